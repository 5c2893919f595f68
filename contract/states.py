"""The states the product reports, shared by every model that carries one (string enums: equal to their values)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Availability", "EngineHealth", "HealthState", "ShardStatus", "SystemStatus"]


class HealthState(StrEnum):
    """An instance's or a service's health, unknown until the first checks have run; `rank` orders them."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        """-1 unknown, 0 healthy, 1 degraded, 2 unhealthy."""
        return _RANKS[self.value]


_RANKS = {"unknown": -1, "healthy": 0, "degraded": 1, "unhealthy": 2}


class SystemStatus(StrEnum):
    """The fleet at a glance: healthy when every checked service is, unknown before any check."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNKNOWN = "unknown"


class EngineHealth(StrEnum):
    """GET /api/health's verdict: ok when the database answers and the writer reaches it."""

    OK = "ok"
    DEGRADED = "degraded"


class Availability(StrEnum):
    """Whether a part of the engine (the engine itself, its database) is reachable."""

    UP = "up"
    DOWN = "down"


class ShardStatus(StrEnum):
    """A metrics partition: DEFAULT, ahead of now, holding now, past and kept, or past retention."""

    DEFAULT = "default"
    FUTURE = "future"
    ACTIVE = "active"
    SEALED = "sealed"
    EXPIRED = "expired"
