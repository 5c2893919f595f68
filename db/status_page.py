"""What the public status page shows, in three queries: the chosen services and their state, their uptime per UTC
day (db.history.services_daily_availability) and their open incidents with the latest note."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select, true
from sqlalchemy.orm import Session

from contract.incidents import IncidentStatus
from db.alerting_models import IncidentNoteRow, IncidentRow
from db.history import NOTHING, Availability, services_daily_availability
from db.models import Service

__all__ = ["DAYS", "OpenIncident", "ServiceStatus", "StatusPageData", "status_page_data"]

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
    uptime = services_daily_availability(session, [found[n][0] for n in order], first, today, now, grace)
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
