"""Health history: uptime per service and instance over a window, daily uptime bars, the latest check results
(heartbeat), check latency over time.

A service is up while its aggregate state is healthy or degraded (at least one instance serves) and down
while it is unhealthy (no instance healthy or degraded). Time before the first check, while no engine
checked it, or after its last check is unknown: neither up nor down. uptimePercent = up / (up + down) x 100,
null when nothing was observed.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contract.requests import StrictModel
from contract.states import HealthState

__all__ = [
    "CheckLatencyOut",
    "CheckLatencyPointOut",
    "CheckOut",
    "CheckQuery",
    "DailyUptimeOut",
    "DailyUptimeQuery",
    "InstanceUptimeOut",
    "UptimeOut",
    "UptimeQuery",
    "UptimeWindow",
]


class UptimeWindow(StrEnum):
    """How far back an uptime or latency answer looks from now."""

    HOUR = "1h"
    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"
    QUARTER = "90d"

    @property
    def span(self) -> timedelta:
        """The window's length."""
        return _SPANS[self.value]

    @property
    def step(self) -> timedelta:
        """The check-latency series' step for this window (a point per minute up to a day)."""
        return _STEPS[self.value]


_SPANS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30),
          "90d": timedelta(days=90)}
_STEPS = {"1h": timedelta(minutes=1), "24h": timedelta(minutes=1), "7d": timedelta(minutes=15),
          "30d": timedelta(hours=1), "90d": timedelta(days=1)}


class UptimeQuery(StrictModel):
    """GET /api/services/<id>/uptime and /check-latency query string."""

    window: UptimeWindow = UptimeWindow.DAY


class CheckQuery(StrictModel):
    """GET /api/services/<id>/checks query string."""

    limit: int = Field(default=50, ge=1, le=1000)


class DailyUptimeQuery(StrictModel):
    """GET /api/services/<id>/uptime/daily query string."""

    days: int = Field(default=90, ge=1, le=366)


class InstanceUptimeOut(BaseModel):
    """One current instance over the window: up = healthy or degraded, down = unhealthy."""

    id: int
    url: str
    uptimePercent: float | None = Field(description="up / (up + down) x 100; null when never observed")
    checks: int = Field(description="checks in the window's closed minutes")
    downtimeSeconds: float
    observedSeconds: float


class UptimeOut(BaseModel):
    """A service's uptime over a window ending now."""

    model_config = ConfigDict(validate_by_name=True)

    serviceId: int
    window: UptimeWindow
    from_: str = Field(validation_alias="from", serialization_alias="from")
    to: str
    uptimePercent: float | None = Field(description="up / (up + down) x 100; null when nothing was observed")
    checks: int = Field(description="checks of all its instances in the window's closed minutes (up to a minute "
                                    "behind)")
    downtimeSeconds: float
    observedSeconds: float = Field(description="seconds up or down; the rest of the window is unknown")
    incidents: int = Field(description="down periods that began in the window")
    instances: list[InstanceUptimeOut]


class DailyUptimeOut(BaseModel):
    """One UTC day of a service (today: so far)."""

    day: str
    uptimePercent: float | None
    checks: int
    downtimeSeconds: float
    observedSeconds: float
    incidents: int


class CheckOut(BaseModel):
    """One check result as measured (its raw state, before fall/rise damping)."""

    instanceId: int
    at: str
    state: HealthState
    latencyMs: float | None
    statusCode: int | None
    error: str | None


class CheckLatencyPointOut(BaseModel):
    """One step: checks of all instances, mean and max latency of those that measured one."""

    at: str
    checks: int
    latencyAvgMs: float | None
    latencyMaxMs: float | None


class CheckLatencyOut(BaseModel):
    """A service's check latency over a window; steps without checks are absent."""

    serviceId: int
    window: UptimeWindow
    stepSeconds: int
    points: list[CheckLatencyPointOut]
