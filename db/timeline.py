"""An incident's timeline: every recorded event that touched its service between a margin before it started and
its end, read from each source by an index (service and time), oldest first. A Session first, never a commit.

Sources: its alerts' state changes, its notifications, the simulations and load tests whose spans overlap it (those
aimed at the service or at every service) and its notes; for a service's incident also health changes of the
service and its instances, its breaker's transitions and its scaling changes (an incident of the monitor itself
has no service: it takes every simulation and load test, and no per-service source). Each source gives at most
`per_source` events (the oldest).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from contract.incidents import TimelineEventOut, TimelineKind
from db.alerting_models import AlertEventRow, DeliveryRow, IncidentNoteRow
from db.models import (
    BreakerTransitionRow,
    Instance,
    InstanceHealthTransition,
    LoadTest,
    ScalingEvent,
    Service,
    ServiceHealthTransition,
    Simulation,
)

__all__ = ["MARGIN", "PER_SOURCE", "Span", "Timeline", "service_events", "timeline"]

MARGIN = timedelta(minutes=5)  # what led up to an incident: the fault or load that began just before it
PER_SOURCE = 500


@dataclass(frozen=True)
class Span:
    """The stretch of time a timeline covers, and the incident it belongs to (None: no incident, e.g. an
    experiment run's span)."""

    incident_id: uuid.UUID | None
    service: str | None  # None: the monitor itself (every source, every service)
    fingerprints: tuple[str, ...] | None  # the alerts it covers; None: every alert of the service
    start: datetime  # the incident's start less the margin
    end: datetime  # its resolution, or now
    longest: timedelta  # the longest a simulation or load test may run: bounds the index range of spans


@dataclass(frozen=True)
class Timeline:
    """The events, oldest first; truncated when a source had more than `per_source`."""

    events: list[TimelineEventOut]
    truncated: bool


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _event(at: datetime, kind: TimelineKind, title: str, detail: dict[str, Any],
           end: datetime | None = None) -> tuple[datetime, TimelineEventOut]:
    return at, TimelineEventOut(at=at.isoformat(), endAt=_iso(end), kind=kind, title=title, detail=detail)


def _aimed(column: InstrumentedAttribute[str | None], service: str | None) -> ColumnElement[bool]:
    """A span aimed at the service or at every service (a serviceless incident takes every span)."""
    return true() if service is None else or_(column == service, column.is_(None))


def _same_service(column: InstrumentedAttribute[str | None], service: str | None) -> ColumnElement[bool]:
    return column.is_(None) if service is None else column == service


def _alerts(session: Session, span: Span, limit: int) -> Iterable[tuple[datetime, TimelineEventOut]]:
    if span.fingerprints is not None and not span.fingerprints:
        return
    query = select(AlertEventRow).where(
        _same_service(AlertEventRow.service_name, span.service), AlertEventRow.at.between(span.start, span.end))
    if span.fingerprints is not None:
        query = query.where(AlertEventRow.fingerprint.in_(span.fingerprints))
    rows = session.scalars(query.order_by(AlertEventRow.at, AlertEventRow.id).limit(limit))
    for r in rows:
        silenced = " (silenced)" if r.silenced else ""
        yield _event(r.at, TimelineKind.ALERT, f"{r.rule_name} {r.state}{silenced}",
                     {"fingerprint": r.fingerprint, "ruleId": r.rule_id, "ruleName": r.rule_name,
                      "service": r.service_name, "state": r.state, "silenced": r.silenced, "value": r.value})


def _notifications(session: Session, span: Span, limit: int) -> Iterable[tuple[datetime, TimelineEventOut]]:
    if not span.fingerprints:  # notifications belong to an incident's own alerts
        return
    rows = session.scalars(select(DeliveryRow).where(
        DeliveryRow.fingerprint.in_(span.fingerprints), DeliveryRow.created_at.between(span.start, span.end))
        .order_by(DeliveryRow.created_at, DeliveryRow.id).limit(limit))
    for r in rows:
        yield _event(r.created_at, TimelineKind.NOTIFICATION, f"{r.event} notification to {r.channel_name}: "
                     f"{r.status}", {"deliveryId": str(r.id), "channel": r.channel_name, "fingerprint": r.fingerprint,
                                     "event": r.event, "status": r.status, "attempts": r.attempts,
                                     "lastError": r.last_error, "deliveredAt": _iso(r.delivered_at)})


def _service_health(session: Session, span: Span, service_id: int,
                    limit: int) -> Iterable[tuple[datetime, TimelineEventOut]]:
    t = ServiceHealthTransition
    for r in session.scalars(select(t).where(t.service_id == service_id, t.at.between(span.start, span.end))
                             .order_by(t.at, t.id).limit(limit)):
        yield _event(r.at, TimelineKind.HEALTH, f"{span.service} {r.from_state} → {r.to_state}",
                     {"scope": "service", "from": r.from_state, "to": r.to_state})


def _instance_health(session: Session, span: Span, service_id: int,
                     limit: int) -> Iterable[tuple[datetime, TimelineEventOut]]:
    t = InstanceHealthTransition
    rows = session.execute(select(t, Instance.url).outerjoin(Instance, Instance.id == t.instance_id)
                           .where(t.service_id == service_id, t.at.between(span.start, span.end))
                           .order_by(t.at, t.id).limit(limit))
    for r, url in rows:
        yield _event(r.at, TimelineKind.HEALTH, f"instance {url or r.instance_id} {r.from_state} → {r.to_state}",
                     {"scope": "instance", "instanceId": r.instance_id, "url": url, "from": r.from_state,
                      "to": r.to_state, "latencyMs": r.latency_ms, "statusCode": r.status_code, "error": r.error})


def _breakers(session: Session, span: Span, service: str,
              limit: int) -> Iterable[tuple[datetime, TimelineEventOut]]:
    t = BreakerTransitionRow
    query = select(t).where(t.service_name == service, t.at.between(span.start, span.end))
    for r in session.scalars(query.order_by(t.at, t.id).limit(limit)):
        yield _event(r.at, TimelineKind.BREAKER, f"breaker of {r.service_name} {r.from_state} → {r.to_state}",
                     {"service": r.service_name, "from": r.from_state, "to": r.to_state, "reason": r.reason})


def _scaling(session: Session, span: Span, service: str, limit: int) -> Iterable[tuple[datetime, TimelineEventOut]]:
    t = ScalingEvent
    query = select(t).where(t.service_name == service, t.timestamp.between(span.start, span.end),
                            t.direction != "none")
    for r in session.scalars(query.order_by(t.timestamp, t.id).limit(limit)):
        yield _event(r.timestamp, TimelineKind.SCALING,
                     f"{r.service_name} scaled {r.direction} {r.from_count} → {r.to_count}",
                     {"service": r.service_name, "direction": r.direction, "from": r.from_count, "to": r.to_count,
                      "reason": r.reason, "source": r.source, "metric": r.metric, "metricValue": r.metric_value,
                      "target": r.target})


def _simulations(session: Session, span: Span, limit: int) -> Iterable[tuple[datetime, TimelineEventOut]]:
    t = Simulation
    query = select(t).where(
        t.started_at.between(span.start - span.longest, span.end),
        func.coalesce(t.ended_at, t.ends_at) >= span.start, _aimed(t.target, span.service))
    for r in session.scalars(query.order_by(t.started_at, t.id).limit(limit)):
        yield _event(r.started_at, TimelineKind.SIMULATION, f"{r.kind} simulation on {r.target or 'every service'}",
                     {"id": r.id, "kind": r.kind, "target": r.target, "params": r.params, "status": r.status,
                      "silence": r.silence, "endsAt": r.ends_at.isoformat()}, r.ended_at)


def _load_tests(session: Session, span: Span, limit: int) -> Iterable[tuple[datetime, TimelineEventOut]]:
    t = LoadTest
    planned_end = t.started_at + func.make_interval(0, 0, 0, 0, 0, 0, t.duration_s)
    query = select(t).where(
        t.started_at.between(span.start - span.longest, span.end),
        func.coalesce(t.ended_at, planned_end) >= span.start, _aimed(t.target_service, span.service))
    for r in session.scalars(query.order_by(t.started_at, t.id).limit(limit)):
        yield _event(r.started_at, TimelineKind.LOAD_TEST,
                     f"load test {r.id}: {r.requests_per_second:g} req/s on {r.target_service or 'every service'}",
                     {"id": r.id, "status": r.status, "target": r.target_service,
                      "requestsPerSecond": r.requests_per_second, "concurrentUsers": r.concurrent_users,
                      "durationSeconds": r.duration_s, "totalRequests": r.total_requests,
                      "failedRequests": r.failed_requests}, r.ended_at)


def _notes(session: Session, span: Span, limit: int) -> Iterable[tuple[datetime, TimelineEventOut]]:
    if span.incident_id is None:
        return
    t = IncidentNoteRow
    for r in session.scalars(select(t).where(t.incident_id == span.incident_id).order_by(t.at, t.id).limit(limit)):
        yield _event(r.at, TimelineKind.NOTE, f"note by {r.author or 'unknown'}", {"author": r.author, "note": r.note})


def timeline(session: Session, span: Span, per_source: int = PER_SOURCE) -> Timeline:
    """Every event of the incident's span, oldest first."""
    # each query asks for one more than it may show: a source that returns it has been cut
    probe = per_source + 1
    sources: list[Iterable[tuple[datetime, TimelineEventOut]]] = [
        _alerts(session, span, probe), _notifications(session, span, probe), _simulations(session, span, probe),
        _load_tests(session, span, probe), _notes(session, span, probe),
    ]
    if span.service is not None:
        sources += [_breakers(session, span, span.service, probe), _scaling(session, span, span.service, probe)]
        service_id = session.scalar(select(Service.id).where(Service.name == span.service))
        if service_id is not None:
            sources += [_service_health(session, span, service_id, probe),
                        _instance_health(session, span, service_id, probe)]
    collected: list[tuple[datetime, TimelineEventOut]] = []
    truncated = False
    for source in sources:
        part = list(source)
        truncated = truncated or len(part) > per_source
        collected.extend(part[:per_source])
    collected.sort(key=lambda pair: pair[0])  # stable: within one instant, the sources' order
    return Timeline([event for _, event in collected], truncated)


def service_events(session: Session, span: Span, per_source: int = PER_SOURCE) -> list[TimelineEventOut]:
    """What happened to the span's service on its own: its breaker's transitions, its alerts' state changes and its
    health changes (service and instances), oldest first, at most `per_source` of each."""
    if span.service is None:
        return []
    sources: list[Iterable[tuple[datetime, TimelineEventOut]]] = [
        _breakers(session, span, span.service, per_source), _alerts(session, span, per_source)]
    service_id = session.scalar(select(Service.id).where(Service.name == span.service))
    if service_id is not None:
        sources += [_service_health(session, span, service_id, per_source),
                    _instance_health(session, span, service_id, per_source)]
    collected = [pair for source in sources for pair in source]
    collected.sort(key=lambda pair: pair[0])
    return [event for _, event in collected]
