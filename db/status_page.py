"""What the public status page shows, in three queries: the chosen services and their state, their uptime per UTC
day (db.history's definition, every service at once) and their open incidents with the latest note."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select, text, true
from sqlalchemy.orm import Session

from contract.incidents import IncidentStatus
from db.alerting_models import IncidentNoteRow, IncidentRow
from db.history import _DOWN, _UP, NOTHING, Availability, _spans
from db.models import Service

__all__ = ["DAYS", "OpenIncident", "ServiceStatus", "StatusPageData", "daily_uptime", "status_page_data"]

DAYS = 90


@dataclass(frozen=True)
class ServiceStatus:
    """A service's state now, its uptime % per day (oldest day first; None: nothing observed that day) and over
    them all (None: nothing observed at all)."""

    name: str
    status: str
    days: tuple[float | None, ...]
    uptime: float | None


@dataclass(frozen=True)
class OpenIncident:
    """An open incident as the public sees it."""

    service: str
    title: str
    severity: str
    started_at: datetime
    acknowledged_at: datetime | None
    note: str | None
    note_at: datetime | None


@dataclass(frozen=True)
class StatusPageData:
    """Everything the status page draws."""

    first_day: date
    services: tuple[ServiceStatus, ...]
    incidents: tuple[OpenIncident, ...]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def daily_uptime(session: Session, service_ids: Sequence[int], first: date, last: date, end: datetime,
                 grace: timedelta) -> dict[int, dict[date, Availability]]:
    """Each service's availability per UTC day from first to last (clipped at end), in one query: the spans of
    db.history.daily_availability (up = healthy or degraded, down = unhealthy, unknown time neither, a state not
    carried past its last evidence plus `grace`), for every service at once. A day nothing was observed is
    NOTHING."""
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    if not service_ids or not days:
        return {}
    starts = [_midnight(d) for d in days]
    sql = f"""
        WITH {_spans("service")},
        days AS (SELECT lo, lo + interval '1 day' AS hi FROM unnest(CAST(:los AS timestamptz[])) AS d(lo))
        SELECT spans.key, days.lo,
               coalesce(sum(extract(epoch FROM least(stop, hi) - greatest(start, lo)))
                        FILTER (WHERE {_UP}), 0)::float8,
               coalesce(sum(extract(epoch FROM least(stop, hi) - greatest(start, lo)))
                        FILTER (WHERE {_DOWN}), 0)::float8,
               count(*) FILTER (WHERE ord = 1 AND {_DOWN} AND start >= lo)
        FROM days JOIN spans ON spans.start < days.hi AND spans.stop > days.lo
        GROUP BY spans.key, days.lo
    """  # noqa: S608 - db.history's fragments
    rows = session.execute(text(sql), {
        "keys": list(service_ids), "sid": 0, "a": starts[0], "b": min(end, _midnight(last) + timedelta(days=1)),
        "grace": grace, "los": starts}).all()
    out: dict[int, dict[date, Availability]] = {int(k): {} for k in service_ids}
    for key, lo, up, down, n in rows:
        out[int(key)][lo.astimezone(UTC).date()] = Availability(float(up), float(down), int(n))
    return {k: {d: found.get(d, NOTHING) for d in days} for k, found in out.items()}


def status_page_data(session: Session, names: Sequence[str], now: datetime, grace: timedelta,
                     days: int = DAYS) -> StatusPageData:
    """The services named (in that order; every service by name when none are) over the `days` UTC days ending
    with today (up to `now`), and their open incidents, newest first. A name no service has is left out."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    q = select(Service.id, Service.name, Service.status)
    if names:
        q = q.where(Service.name.in_(list(names)))
    found = {name: (sid, status or "unknown") for sid, name, status in session.execute(q)}
    order = [n for n in names if n in found] if names else sorted(found)
    uptime = daily_uptime(session, [found[n][0] for n in order], first, today, now, grace)
    calendar = [first + timedelta(days=i) for i in range(days)]
    services = tuple(_service(n, found[n][1], uptime.get(found[n][0], {}), calendar) for n in order)
    return StatusPageData(first, services, _open_incidents(session, order))


def _service(name: str, status: str, per_day: dict[date, Availability], calendar: list[date]) -> ServiceStatus:
    days = tuple(per_day.get(d, NOTHING).uptime_percent for d in calendar)
    total = Availability(sum(a.up_s for a in per_day.values()), sum(a.down_s for a in per_day.values()), 0)
    return ServiceStatus(name, status, days, total.uptime_percent)


def _open_incidents(session: Session, names: Sequence[str]) -> tuple[OpenIncident, ...]:
    if not names:
        return ()
    latest = (select(IncidentNoteRow.note, IncidentNoteRow.at).where(IncidentNoteRow.incident_id == IncidentRow.id)
              .order_by(IncidentNoteRow.at.desc(), IncidentNoteRow.id.desc()).limit(1)
              .correlate(IncidentRow).lateral("latest"))
    q = (select(IncidentRow.service_name, IncidentRow.title, IncidentRow.severity, IncidentRow.started_at,
                IncidentRow.acknowledged_at, latest.c.note, latest.c.at)
         .outerjoin(latest, true())
         .where(IncidentRow.status == IncidentStatus.OPEN.value, IncidentRow.service_name.in_(list(names)))
         .order_by(IncidentRow.started_at.desc()))
    return tuple(OpenIncident(*row) for row in session.execute(q))
