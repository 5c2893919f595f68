"""Service level objectives and the per-minute counts of routed requests they are measured on: a Session first,
values out, never a commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from db.alerting_models import SloMinuteRow, SloRow
from db.models import Service

__all__ = ["MinuteTotals", "delete_minutes_before", "delete_slo", "get_slo", "minute_totals", "put_slo",
           "slo_definitions"]


@dataclass(frozen=True)
class MinuteTotals:
    """Routed requests over a stretch of minutes: all, failed, slower than the SLO's threshold."""

    requests: int
    errors: int
    slow: int


def slo_definitions(session: Session) -> list[tuple[str, SloRow]]:
    """Every SLO with its service's name."""
    rows = session.execute(select(Service.name, SloRow).join(Service, Service.id == SloRow.service_id))
    return [(name, slo) for name, slo in rows]


def get_slo(session: Session, service_id: int) -> SloRow | None:
    """A service's SLO, None when it has none."""
    return session.get(SloRow, service_id)


def put_slo(session: Session, service_id: int, availability_target: float, latency_threshold_ms: float | None,
            latency_target: float | None, window_days: int, at: datetime) -> SloRow:
    """Set (create or replace) a service's SLO."""
    values = {"availability_target": availability_target, "latency_threshold_ms": latency_threshold_ms,
              "latency_target": latency_target, "window_days": window_days, "updated_at": at}
    stmt = pg_insert(SloRow).values(service_id=service_id, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=[SloRow.service_id], set_=values))
    row = session.get(SloRow, service_id, populate_existing=True)
    assert row is not None
    return row


def delete_slo(session: Session, service_id: int) -> bool:
    """Remove a service's SLO; False when it had none."""
    result = session.execute(delete(SloRow).where(SloRow.service_id == service_id))
    return bool(getattr(result, "rowcount", 0))


def minute_totals(session: Session, service: str, since: datetime, before: datetime) -> MinuteTotals:
    """The service's counts of the minutes from `since` (inclusive) to `before` (exclusive)."""
    m = SloMinuteRow
    requests, errors, slow = session.execute(
        select(func.coalesce(func.sum(m.requests), 0), func.coalesce(func.sum(m.errors), 0),
               func.coalesce(func.sum(m.slow), 0))
        .where(m.service_name == service, m.minute >= since, m.minute < before)).one()
    return MinuteTotals(int(requests), int(errors), int(slow))


def delete_minutes_before(session: Session, before: datetime) -> int:
    """Remove every service's minutes older than `before`; how many."""
    result = session.execute(delete(SloMinuteRow).where(SloMinuteRow.minute < before))
    return int(getattr(result, "rowcount", 0))
