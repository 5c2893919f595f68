"""The states the product reports, shared by every model that carries one."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

__all__ = ["HealthState", "Status"]

# an instance's or a service's health; unknown until the first checks have run
Status = Literal["healthy", "degraded", "unhealthy", "unknown"]


class HealthState(StrEnum):
    """Instance or service health; `rank` orders them from best to worst."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"

    @property
    def rank(self) -> int:
        """0 healthy, 1 degraded, 2 unhealthy (unknown sorts before healthy)."""
        return _RANKS[self.value]


_RANKS = {"unknown": -1, "healthy": 0, "degraded": 1, "unhealthy": 2}
