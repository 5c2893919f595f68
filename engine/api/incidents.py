"""/api/incidents: incidents opened by critical alerts, their timelines, acknowledgements and MTTA/MTTR."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from flask import g
from sqlalchemy.orm import Session

from contract.alerting import Severity
from contract.errors import NotFound
from contract.incidents import (
    AcknowledgeIn,
    IncidentDetailOut,
    IncidentOut,
    IncidentQuery,
    IncidentStatsOut,
    IncidentStatsQuery,
    IncidentStatus,
)
from contract.roles import Role
from db import incidents as queries
from db.alerting_models import IncidentRow
from db.timeline import MARGIN, Span, timeline
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.store.logs import event_logger

__all__ = ["api", "incident_out"]

api = ApiBlueprint("incidents", tag="incidents")
log = event_logger("incidents")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def incident_out(row: IncidentRow, latest_note: str | None) -> IncidentOut:
    """An incident row as the API shows it."""
    return IncidentOut(
        id=str(row.id), service=row.service_name, status=IncidentStatus(row.status), title=row.title,
        severity=Severity(row.severity), startedAt=row.started_at.isoformat(), resolvedAt=_iso(row.resolved_at),
        acknowledgedAt=_iso(row.acknowledged_at), acknowledgedBy=row.acknowledged_by, expected=row.expected,
        latestNote=latest_note, alerts=list(row.fingerprints),
    )


def _parse_id(incident_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(incident_id)
    except ValueError:
        raise NotFound("incident", incident_id[:100]) from None


def _find(session: Session, incident_id: str) -> tuple[IncidentRow, str | None]:
    key = _parse_id(incident_id)
    found = queries.get_incident(session, key)
    if found is None:
        # the engine may have opened it a moment ago: its row may still wait in the writer's buffer
        runtime().writer.flush()
        session.expire_all()
        found = queries.get_incident(session, key)
    if found is None:
        raise NotFound("incident", incident_id)
    return found


@api.route("GET", "/api/incidents", summary="Incidents, newest first", role=Role.VIEWER, query=IncidentQuery,
           ok=(200, list[IncidentOut]), errors=(400, 503))
def list_incidents(query: IncidentQuery) -> list[IncidentOut]:
    """Filter by status and service."""
    status = None if query.status is None else query.status.value
    with runtime().sessions() as session:
        return [incident_out(row, note)
                for row, note in queries.list_incidents(session, status, query.service, query.limit)]


@api.route("GET", "/api/incidents/stats", summary="Incidents, MTTA and MTTR over a window", role=Role.VIEWER,
           query=IncidentStatsQuery, ok=(200, IncidentStatsOut), errors=(400, 503))
def incident_stats(query: IncidentStatsQuery) -> IncidentStatsOut:
    """Over the incidents started in the last windowDays: MTTA = mean(acknowledgedAt - startedAt) of the acknowledged
    ones, MTTR = mean(resolvedAt - startedAt) of the resolved ones, in seconds; None when there are none."""
    rt = runtime()
    since = rt.clock.now() - timedelta(days=query.windowDays)
    with rt.sessions() as session:
        figures = queries.stats(session, since, query.service)
    return IncidentStatsOut(service=query.service, windowDays=query.windowDays, incidents=figures.incidents,
                            mttaSeconds=figures.mtta_s, mttrSeconds=figures.mttr_s)


@api.route("GET", "/api/incidents/<incident_id>", summary="An incident with its timeline", role=Role.VIEWER,
           ok=(200, IncidentDetailOut), errors=(404, 503))
def incident(incident_id: str) -> IncidentDetailOut:
    """The timeline covers MARGIN (5 min) before the start to the resolution (or now), oldest first."""
    rt = runtime()
    s = rt.settings
    longest = timedelta(seconds=max(s.simulation_max_ms / 1000.0, s.max_duration)) + timedelta(hours=1)
    with rt.sessions() as session:
        row, note = _find(session, incident_id)
        span = Span(row.id, row.service_name, tuple(row.fingerprints), row.started_at - MARGIN,
                    row.resolved_at or rt.clock.now(), longest)
        events = timeline(session, span)
    base = incident_out(row, note)
    return IncidentDetailOut(**base.model_dump(), timeline=events.events, timelineTruncated=events.truncated)


@api.route("POST", "/api/incidents/<incident_id>/acknowledge", summary="Acknowledge an incident, with a note",
           role=Role.OPERATOR, body=AcknowledgeIn, ok=(200, IncidentOut), errors=(400, 404, 422, 503))
def acknowledge(incident_id: str, body: AcknowledgeIn) -> IncidentOut:
    """The first acknowledgement records who and when; every one with a note adds the note."""
    rt = runtime()
    user: str = g.claims.username
    now = rt.clock.now()
    with rt.sessions.begin() as session:
        row, _ = _find(session, incident_id)
        first = queries.acknowledge(session, row.id, now, user)
        if body.note.strip():
            queries.add_note(session, row.id, now, user, body.note.strip())
    if first:
        log.info("incident %s acknowledged by %s", row.id, user, extra={"meta": {"incident": str(row.id),
                                                                                 "by": user}})
    with rt.sessions() as session:
        return incident_out(*_find(session, incident_id))
