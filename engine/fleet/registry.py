"""The in-memory view of registered services that checks and collection run on.

The database is the source of truth; the registry is reloaded from it after every change
made through the API, so checks keep running on the last known fleet while the DB is down.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Service

__all__ = ["InstanceSpec", "Registry", "ServiceSpec"]


@dataclass(frozen=True)
class InstanceSpec:
    """One instance as the engine sees it."""

    id: int
    service_id: int
    url: str
    weight: int = 1


@dataclass(frozen=True)
class ServiceSpec:
    """One service as the engine sees it."""

    id: int
    name: str
    health_path: str
    metrics_path: str | None
    weight: int
    managed: bool
    instances: tuple[InstanceSpec, ...]


class Registry:
    """A thread-safe snapshot of services; readers get an immutable tuple."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: tuple[ServiceSpec, ...] = ()
        self._by_name: dict[str, ServiceSpec] = {}

    def services(self) -> tuple[ServiceSpec, ...]:
        """The current snapshot."""
        return self._services

    def by_name(self, name: str) -> ServiceSpec | None:
        """The service called name, if registered."""
        return self._by_name.get(name)

    def load(self, session: Session) -> None:
        """Replace the snapshot with what the database holds."""
        rows = session.scalars(select(Service).order_by(Service.id)).all()
        snapshot = tuple(
            ServiceSpec(
                id=s.id,
                name=s.name,
                health_path=s.health_path,
                metrics_path=s.metrics_path,
                weight=s.weight,
                managed=s.managed,
                instances=tuple(InstanceSpec(i.id, s.id, i.url, i.weight) for i in s.instances),
            )
            for s in rows
        )
        self.replace(snapshot)

    def replace(self, services: tuple[ServiceSpec, ...]) -> None:
        """Install a snapshot (load() does; tests may hand one in)."""
        with self._lock:
            self._services = services
            self._by_name = {s.name: s for s in services}
