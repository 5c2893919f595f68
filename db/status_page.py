"""What the public status page shows, in two queries: each chosen service's state and its uptime per UTC day,
and the open incidents of those services with their latest note."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from contract.alerting import IncidentStatus
from db.models import IncidentNoteRow, IncidentRow, InstanceCheckDay, Service

__all__ = ["DAYS", "OpenIncident", "ServiceStatus", "StatusPageData", "status_page_data"]

DAYS = 90


@dataclass(frozen=True)
class ServiceStatus:
    """A service's state now, its uptime % per day (oldest day first; None: no check that day) and over them all
    (None: no check at all)."""

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


def status_page_data(session: Session, names: Sequence[str], today: date, days: int = DAYS) -> StatusPageData:
    """The services named (in that order; every service by name when none are) over the `days` UTC days ending
    with `today`, and their open incidents, newest first.

    A day's uptime is the % of the service's instance checks that day whose result was healthy or degraded (the
    service answered); a day without a check has none. A name no service has is left out.
    """
    first = today - timedelta(days=days - 1)
    q = (select(Service.name, Service.status, InstanceCheckDay.day,
                func.sum(InstanceCheckDay.checks), func.sum(InstanceCheckDay.up + InstanceCheckDay.degraded))
         .outerjoin(InstanceCheckDay, (InstanceCheckDay.service_id == Service.id) & (InstanceCheckDay.day >= first)
                    & (InstanceCheckDay.day <= today))
         .group_by(Service.id, Service.name, Service.status, InstanceCheckDay.day))
    if names:
        q = q.where(Service.name.in_(list(names)))
    status_of: dict[str, str] = {}
    counts: dict[str, dict[date, tuple[int, int]]] = {}
    for name, status, day, checks, answered in session.execute(q):
        status_of[name] = status or "unknown"
        if day is not None and checks:
            counts.setdefault(name, {})[day] = (int(answered), int(checks))
    order = [n for n in names if n in status_of] if names else sorted(status_of)
    calendar = [first + timedelta(days=i) for i in range(days)]
    services = tuple(_service(n, status_of[n], counts.get(n, {}), calendar) for n in order)
    return StatusPageData(first, services, _open_incidents(session, order))


def _percent(answered: int, checks: int) -> float | None:
    return 100.0 * answered / checks if checks else None


def _service(name: str, status: str, counts: dict[date, tuple[int, int]], calendar: list[date]) -> ServiceStatus:
    days = tuple(_percent(*counts[d]) if d in counts else None for d in calendar)
    total = _percent(sum(a for a, _ in counts.values()), sum(c for _, c in counts.values()))
    return ServiceStatus(name, status, days, total)


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
