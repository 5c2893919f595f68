"""Reads of the fleet views at 10,000 instances: a filtered, ordered page of services with their instances, how
many matched, and the counts per status; column queries throughout (mapped objects cost ~20x more per row)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from db.models import Instance, Service

__all__ = ["FleetFilter", "InstanceRow", "ServiceRow", "count_services", "instance_counts", "service_page",
           "status_counts"]

SORTS = ("id", "name", "status")
# worst first: what needs attention leads the list
_STATUS_ORDER = {"unhealthy": 0, "degraded": 1, "unknown": 2, "healthy": 3}


@dataclass(frozen=True)
class FleetFilter:
    """Which services a view shows: any of `statuses` (empty = every status) whose name contains `name`."""

    statuses: tuple[str, ...] = ()
    name: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE terms on Service."""
        out: list[ColumnElement[bool]] = []
        if self.statuses:
            out.append(Service.status.in_(self.statuses))
        if self.name:
            escaped = self.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            out.append(Service.name.ilike(f"%{escaped}%", escape="\\"))
        return out


@dataclass(frozen=True)
class InstanceRow:
    """One instance as the fleet views show it."""

    id: int
    url: str
    status: str
    last_health_check: datetime | None
    latency_ms: float | None
    weight: int
    last_error: str | None


@dataclass(frozen=True)
class ServiceRow:
    """One service with its instances, by id."""

    id: int
    name: str
    status: str
    last_health_check: datetime | None
    managed: bool
    health_path: str
    metrics_path: str | None
    weight: int
    created_at: datetime | None
    instances: tuple[InstanceRow, ...] = field(default=())


def count_services(session: Session, fleet: FleetFilter) -> int:
    """How many services the filter matches."""
    return session.scalar(select(func.count()).select_from(Service).where(*fleet.conditions())) or 0


def status_counts(session: Session, fleet: FleetFilter = FleetFilter()) -> dict[str, int]:
    """Services per status among those the filter matches (a status with none is absent)."""
    query = select(Service.status, func.count()).where(*fleet.conditions()).group_by(Service.status)
    return {status: n for status, n in session.execute(query)}


def instance_counts(session: Session, fleet: FleetFilter = FleetFilter()) -> dict[str, int]:
    """Instances per status of the services the filter matches."""
    query = (select(Instance.status, func.count()).join(Service, Service.id == Instance.service_id)
             .where(*fleet.conditions()).group_by(Instance.status))
    return {status: n for status, n in session.execute(query)}


def _order(sort: str) -> list[Any]:
    # names compare case-blind in byte order: the same on every server, whatever its collation
    by_name = func.lower(Service.name).collate("C")
    if sort == "name":
        return [by_name, Service.id]
    if sort == "status":
        return [case(_STATUS_ORDER, value=Service.status, else_=len(_STATUS_ORDER)), by_name, Service.id]
    if sort == "id":
        return [Service.id]
    raise ValueError(f"unknown sort {sort!r}: one of {', '.join(SORTS)}")


def service_page(session: Session, fleet: FleetFilter = FleetFilter(), sort: str = "id", limit: int | None = None,
                 offset: int = 0) -> list[ServiceRow]:
    """The services the filter matches in `sort` order, `limit` of them (None = all) after skipping `offset`, each
    with its instances by id."""
    query = select(
        Service.id, Service.name, Service.status, Service.last_health_check, Service.managed, Service.health_path,
        Service.metrics_path, Service.weight, Service.created_at,
    ).where(*fleet.conditions()).order_by(*_order(sort)).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    services = session.execute(query).all()
    if not services:
        return []
    of = _instances(session, [s[0] for s in services], whole=limit is None and not fleet.conditions())
    return [ServiceRow(sid, name, status, checked, managed, health, metrics, weight, created,
                       instances=tuple(of.get(sid, ())))
            for sid, name, status, checked, managed, health, metrics, weight, created in services]


def _instances(session: Session, ids: Sequence[int], whole: bool) -> dict[int, list[InstanceRow]]:
    query = select(Instance.service_id, Instance.id, Instance.url, Instance.status, Instance.last_health_check,
                   Instance.latency_ms, Instance.weight, Instance.last_error).order_by(Instance.id)
    if not whole:  # the whole fleet needs no list of ids to compare against
        query = query.where(Instance.service_id.in_(ids))
    of: dict[int, list[InstanceRow]] = {}
    for sid, iid, url, status, checked, latency, weight, error in session.execute(query):
        of.setdefault(sid, []).append(InstanceRow(iid, url, status, checked, latency, weight, error))
    return of
