"""Writing one batch of engine events: COPY for the append-only rows, set-based updates for current state.

Append-only rows (metrics, logs, load-test samples, breaker and health transitions, alert state changes, the
audit trail) go through COPY in the caller's transaction; check rollups are upserts that add to their minute and day
(db.history), SLO minutes are added to their row; current state (instances, services, load-test totals,
breakers, alerts, deliveries, incidents) is updated with one statement per table for the newest value of each
row. `careful=True` is the slow path for
a batch that failed for a reason other than the connection: plain INSERTs that skip rows already
written (a batch retried after an unacknowledged commit), each table in its own savepoint so one
bad table costs only its own rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, cast

import psycopg
from psycopg.copy import QueuedLibpqWriter
from psycopg.types.json import Jsonb
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from contract.events import (
    AlertEvent,
    AuditEvent,
    BreakerEvent,
    CheckRollupEvent,
    DeliveryRecord,
    Event,
    IncidentEvent,
    InstanceHealthEvent,
    InstanceTransitionEvent,
    LoadTestProgress,
    LoadTestSampleEvent,
    LogEvent,
    MetricEvent,
    ServiceHealthEvent,
    ServiceTransitionEvent,
    SloMinuteEvent,
)
from db.alerting_models import AlertChannelRow, AlertEventRow, AlertRow, DeliveryRow, IncidentRow, SloMinuteRow
from db.history import upsert_rollups
from db.models import (
    AuditRow,
    BreakerTransitionRow,
    CircuitBreakerRow,
    Instance,
    InstanceHealthTransition,
    LoadTest,
    LoadTestSample,
    LogEntry,
    MetricRow,
    Service,
    ServiceHealthTransition,
)

__all__ = ["Rejected", "is_connection_error", "write_batch"]

_INSTANCES = cast(Table, Instance.__table__)
_SERVICES = cast(Table, Service.__table__)
_LOAD_TESTS = cast(Table, LoadTest.__table__)
_DELIVERIES = cast(Table, DeliveryRow.__table__)
_ALERTS = cast(Table, AlertRow.__table__)


@dataclass(frozen=True)
class Rejected:
    """Rows the database refused in careful mode (constraint or data errors), by table."""

    table: str
    rows: int
    error: str


@dataclass(frozen=True)
class _Append:
    """How one kind of append-only event becomes rows of one table."""

    table: Table
    columns: tuple[str, ...]
    types: tuple[str, ...]  # PostgreSQL types of the columns, for binary COPY
    row: Callable[[Any], tuple[Any, ...]]
    json: tuple[int, ...] = ()  # positions of JSONB values (COPY needs them wrapped)
    keep: Callable[[Any], bool] | None = None  # which events of the kind make a row (None: all)


def _log_row(e: LogEvent) -> tuple[Any, ...]:
    return (e.timestamp, e.level, e.source, e.message, e.metadata)


def _sample_row(e: LoadTestSampleEvent) -> tuple[Any, ...]:
    return (e.load_test_id, e.second, e.at, e.sent, e.ok, e.failed, e.dropped, e.errors, e.latency)


def _transition_row(e: BreakerEvent) -> tuple[Any, ...]:
    return (e.service_name, e.from_state, e.to_state, e.reason, e.at)


_INSTANCE_TRANSITION_COLUMNS = tuple(f.name for f in fields(InstanceTransitionEvent))
_SERVICE_TRANSITION_COLUMNS = tuple(f.name for f in fields(ServiceTransitionEvent))


def _alert_event_row(e: AlertEvent) -> tuple[Any, ...]:
    return (e.fingerprint, e.rule_id, e.rule_name, e.service_name, e.state, e.silenced, e.value, e.at, e.incident_id)


def _changed(e: AlertEvent) -> bool:
    return e.changed


_METRIC_COLUMNS = tuple(f.name for f in fields(MetricEvent))  # the event's fields are the table's columns
_AUDIT_COLUMNS = tuple(f.name for f in fields(AuditEvent))
_APPEND: dict[type, _Append] = {
    # attrgetter, not dataclasses.astuple: astuple deep-copies every field and costs 20x the COPY itself
    MetricEvent: _Append(
        cast(Table, MetricRow.__table__), _METRIC_COLUMNS,
        ("varchar", "timestamptz", "float8", "int4", "int4", "float8", "float8", "float8", "float8", "float8",
         "float8", "int4"),
        attrgetter(*_METRIC_COLUMNS)),
    LogEvent: _Append(
        cast(Table, LogEntry.__table__), ("timestamp", "level", "source", "message", "metadata"),
        ("timestamptz", "varchar", "varchar", "text", "jsonb"), _log_row, json=(4,)),
    LoadTestSampleEvent: _Append(
        cast(Table, LoadTestSample.__table__),
        ("load_test_id", "second", "at", "sent", "ok", "failed", "dropped", "errors", "latency"),
        ("int4", "int4", "timestamptz", "int4", "int4", "int4", "int4", "jsonb", "jsonb"), _sample_row, json=(7, 8)),
    BreakerEvent: _Append(
        cast(Table, BreakerTransitionRow.__table__), ("service_name", "from_state", "to_state", "reason", "at"),
        ("varchar", "varchar", "varchar", "text", "timestamptz"), _transition_row),
    InstanceTransitionEvent: _Append(
        cast(Table, InstanceHealthTransition.__table__), _INSTANCE_TRANSITION_COLUMNS,
        ("int4", "int4", "varchar", "varchar", "timestamptz", "float8", "int4", "text"),
        attrgetter(*_INSTANCE_TRANSITION_COLUMNS)),
    ServiceTransitionEvent: _Append(
        cast(Table, ServiceHealthTransition.__table__), _SERVICE_TRANSITION_COLUMNS,
        ("int4", "varchar", "varchar", "timestamptz"), attrgetter(*_SERVICE_TRANSITION_COLUMNS)),
    AlertEvent: _Append(
        cast(Table, AlertEventRow.__table__),
        ("fingerprint", "rule_id", "rule_name", "service_name", "state", "silenced", "value", "at", "incident_id"),
        ("varchar", "int4", "varchar", "varchar", "varchar", "bool", "float8", "timestamptz", "uuid"),
        _alert_event_row, keep=_changed),
    AuditEvent: _Append(
        cast(Table, AuditRow.__table__), _AUDIT_COLUMNS,
        ("timestamptz", "varchar", "varchar", "varchar", "varchar", "varchar", "varchar", "varchar", "int2",
         "varchar"),
        attrgetter(*_AUDIT_COLUMNS)),
}


def write_batch(session: Session, batch: Sequence[Event], *, careful: bool = False) -> list[Rejected]:
    """Write every event of the batch in the session's transaction (the caller commits)."""
    by_kind: dict[type, list[Any]] = {}
    for event in batch:
        by_kind.setdefault(type(event), []).append(event)
    rejected: list[Rejected] = []
    for kind, spec in _APPEND.items():
        events = by_kind.get(kind)
        if events and spec.keep is not None:
            events = [e for e in events if spec.keep(e)]
        if not events:
            continue
        rows = [spec.row(e) for e in events]
        if not careful:
            _copy(session, spec, rows)
            continue
        try:
            with session.begin_nested():
                values = [dict(zip(spec.columns, r, strict=True)) for r in rows]
                session.execute(pg_insert(spec.table).on_conflict_do_nothing(), values)
        except Exception as exc:
            if is_connection_error(exc):
                raise
            rejected.append(Rejected(spec.table.name, len(rows), f"{type(exc).__name__}: {exc}"[:300]))
    rollups = by_kind.get(CheckRollupEvent)
    if rollups and not careful:
        upsert_rollups(session, rollups)
    elif rollups:
        try:
            with session.begin_nested():
                upsert_rollups(session, rollups)
        except Exception as exc:
            if is_connection_error(exc):
                raise
            rejected.append(Rejected("instance_checks_1m", len(rollups), f"{type(exc).__name__}: {exc}"[:300]))
    _write_state(session, by_kind)
    return rejected


def _copy(session: Session, spec: _Append, rows: list[tuple[Any, ...]]) -> None:
    raw = cast(psycopg.Connection[Any], session.connection().connection.driver_connection)
    names = ", ".join(f'"{c}"' for c in spec.columns)
    # binary: PostgreSQL skips parsing text (a third faster here); the queued writer sends on its own thread,
    # so the server takes one chunk while Python encodes the next
    with raw.cursor() as cursor, cursor.copy(f"COPY {spec.table.name} ({names}) FROM STDIN (FORMAT BINARY)",
                                             writer=QueuedLibpqWriter(cursor)) as copy:
        copy.set_types(list(spec.types))
        if spec.json:
            rows = [_wrap_json(row, spec.json) for row in rows]
        for row in rows:
            copy.write_row(row)


def _wrap_json(row: tuple[Any, ...], positions: tuple[int, ...]) -> tuple[Any, ...]:
    values = list(row)
    for i in positions:
        if values[i] is not None:
            values[i] = Jsonb(values[i])
    return tuple(values)


def is_connection_error(exc: BaseException) -> bool:
    """Whether the failure was the connection (retry later) rather than the rows (reject them)."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(exc.orig, psycopg.OperationalError)
    return isinstance(exc, psycopg.OperationalError)


def _write_state(session: Session, by_kind: dict[type, list[Any]]) -> None:
    # only the newest state of each row matters
    instances = {e.instance_id: e for e in by_kind.get(InstanceHealthEvent, ())}
    services = {e.service_id: e for e in by_kind.get(ServiceHealthEvent, ())}
    progress = {e.load_test_id: e for e in by_kind.get(LoadTestProgress, ())}
    breakers = {e.service_name: e for e in by_kind.get(BreakerEvent, ())}
    _write_incidents(session, by_kind.get(IncidentEvent, ()), by_kind.get(SloMinuteEvent, ()))
    deliveries = {e.id: e for e in by_kind.get(DeliveryRecord, ())}
    alerts = {e.fingerprint: e for e in by_kind.get(AlertEvent, ())}
    if alerts:
        _upsert_alerts(session, list(alerts.values()))
    if progress:
        session.execute(
            update(_LOAD_TESTS).where(_LOAD_TESTS.c.id == bindparam("tid")).values(
                status=bindparam("st"), total_requests=bindparam("tot"), successful_requests=bindparam("okn"),
                failed_requests=bindparam("bad"), dropped_requests=bindparam("drop"), ended_at=bindparam("end"),
                summary=bindparam("sum"),
            ),
            [{"tid": e.load_test_id, "st": e.status, "tot": e.total_requests, "okn": e.successful_requests,
              "bad": e.failed_requests, "drop": e.dropped_requests, "end": e.ended_at, "sum": e.summary}
             for e in progress.values()],
        )
    if instances:
        session.execute(
            update(_INSTANCES).where(_INSTANCES.c.id == bindparam("iid")).values(
                status=bindparam("st"), last_health_check=bindparam("at"), latency_ms=bindparam("lat"),
                last_error=bindparam("err"),
            ),
            [{"iid": e.instance_id, "st": e.status, "at": e.checked_at, "lat": e.latency_ms, "err": e.error}
             for e in instances.values()],
        )
    if services:
        session.execute(
            update(_SERVICES).where(_SERVICES.c.id == bindparam("sid")).values(
                status=bindparam("st"), last_health_check=bindparam("at"),
            ),
            [{"sid": e.service_id, "st": e.status, "at": e.checked_at} for e in services.values()],
        )
    for e in breakers.values():
        stmt = pg_insert(CircuitBreakerRow).values(
            service_name=e.service_name, state=e.to_state, failure_count=e.failure_count,
            last_failure=e.last_failure, updated_at=e.at,
        )
        session.execute(stmt.on_conflict_do_update(
            index_elements=[CircuitBreakerRow.service_name],
            set_={"state": e.to_state, "failure_count": e.failure_count, "last_failure": e.last_failure,
                  "updated_at": e.at},
        ))
    if deliveries:
        _write_deliveries(session, list(deliveries.values()))


def _write_incidents(session: Session, incidents: Sequence[IncidentEvent], minutes: Sequence[SloMinuteEvent]) -> None:
    newest = {e.id: e for e in incidents}
    if newest:
        stmt = pg_insert(IncidentRow).values([
            {"id": e.id, "service_name": e.service_name, "status": e.status, "title": e.title,
             "severity": e.severity, "started_at": e.started_at, "resolved_at": e.resolved_at,
             "expected": e.expected, "fingerprints": list(e.fingerprints)}
            for e in newest.values()
        ])
        # the acknowledgement columns belong to the API: an engine write never touches them
        session.execute(stmt.on_conflict_do_update(
            index_elements=[IncidentRow.id],
            set_={"status": stmt.excluded.status, "resolved_at": stmt.excluded.resolved_at,
                  "fingerprints": stmt.excluded.fingerprints},
        ))
    # one row per service and minute in a statement (ON CONFLICT may touch a row once): sum them first
    summed: dict[tuple[str, Any], list[int]] = {}
    for m in minutes:
        counts = summed.setdefault((m.service_name, m.minute), [0, 0, 0])
        counts[0] += m.requests
        counts[1] += m.errors
        counts[2] += m.slow
    if summed:
        table = cast(Table, SloMinuteRow.__table__)
        stmt = pg_insert(table).values([
            {"service_name": name, "minute": minute, "requests": r, "errors": e, "slow": slow}
            for (name, minute), (r, e, slow) in summed.items()
        ])
        session.execute(stmt.on_conflict_do_update(
            index_elements=[table.c.service_name, table.c.minute],
            set_={"requests": table.c.requests + stmt.excluded.requests,
                  "errors": table.c.errors + stmt.excluded.errors, "slow": table.c.slow + stmt.excluded.slow},
        ))


def _write_deliveries(session: Session, records: list[DeliveryRecord]) -> None:
    # a channel deleted since the notification was queued is gone from alert_channels: the row keeps its name and
    # a NULL channel_id rather than failing the batch on the foreign key
    channel = select(AlertChannelRow.id).where(AlertChannelRow.id == bindparam("cid")).scalar_subquery()
    stmt = pg_insert(_DELIVERIES).values(
        id=bindparam("did"), channel_id=channel, channel_name=bindparam("cname"), fingerprint=bindparam("fp"),
        event=bindparam("ev"), status=bindparam("st"), attempts=bindparam("n"), last_error=bindparam("err"),
        payload=bindparam("body", type_=_DELIVERIES.c.payload.type), created_at=bindparam("created"),
        next_attempt_at=bindparam("next"), delivered_at=bindparam("done"),
    )
    # an older state never overwrites a newer one (attempts only grow)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_DELIVERIES.c.id],
        set_={"status": stmt.excluded.status, "attempts": stmt.excluded.attempts,
              "last_error": stmt.excluded.last_error, "next_attempt_at": stmt.excluded.next_attempt_at,
              "delivered_at": stmt.excluded.delivered_at},
        where=_DELIVERIES.c.attempts <= stmt.excluded.attempts,
    )
    session.execute(stmt, [
        {"did": e.id, "cid": e.channel_id, "cname": e.channel_name, "fp": e.fingerprint, "ev": e.event,
         "st": e.status, "n": e.attempts, "err": e.last_error, "body": e.payload, "created": e.created_at,
         "next": e.next_attempt_at, "done": e.delivered_at}
        for e in records
    ])


_ALERT_STATE = ("rule_id", "rule_name", "kind", "severity", "service_name", "state", "silenced", "value", "threshold",
                "summary", "active_at", "fired_at", "resolved_at", "last_notified_at", "incident_id")


def _upsert_alerts(session: Session, events: list[AlertEvent]) -> None:
    """Each alert's row set to its newest state (one row per fingerprint)."""
    rows = [{"fingerprint": e.fingerprint, **{c: getattr(e, c) for c in _ALERT_STATE}, "updated_at": e.at}
            for e in events]
    stmt = pg_insert(_ALERTS)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[_ALERTS.c.fingerprint],
        set_={c: stmt.excluded[c] for c in (*_ALERT_STATE, "updated_at")},
    ), rows)
