"""Failure simulations: the start requests of each kind and a simulation's record."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from contract.requests import Duration, Name, Probability, StrictModel

__all__ = [
    "INTENSITY_PRESSURE",
    "DatabaseOverloadStart",
    "Intensity",
    "MemoryLeakStart",
    "NetworkLatencyStart",
    "ServiceFailureStart",
    "SimulationOut",
    "SimulationQuery",
    "StopAllOut",
]


class Intensity(StrEnum):
    """How hard a database overload presses: low, medium or high."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


# what each intensity does to the engine's database: busy connections, and whether one of them holds a lock the
# engine's writes wait for
INTENSITY_PRESSURE: dict[Intensity, tuple[int, bool]] = {
    Intensity.LOW: (1, False), Intensity.MEDIUM: (3, False), Intensity.HIGH: (6, True)}


class SimulationOut(BaseModel):
    """One failure simulation; remainingMs while active; effect = what was measured (after it ends)."""

    id: int
    kind: Literal["service-failure", "network-latency", "database-overload", "memory-leak"]
    target: str | None
    params: dict[str, Any]
    status: Literal["active", "completed", "stopped", "interrupted", "failed"]
    startedAt: str
    endsAt: str
    endedAt: str | None
    remainingMs: float | None
    effect: dict[str, Any] | None


class StopAllOut(BaseModel):
    """POST /api/simulate/stop-all."""

    message: str
    stopped: int


class ServiceFailureStart(StrictModel):
    """POST /api/simulate/service-failure: fail requests (connection error or statusCode), or kill an instance."""

    serviceName: Name
    duration: Duration
    probability: Probability = 1.0
    statusCode: int | None = Field(default=None, ge=400, le=599)
    mode: Literal["error", "kill"] = "error"


class NetworkLatencyStart(StrictModel):
    """POST /api/simulate/network-latency (ms); without serviceName every service is delayed."""

    latency: float = Field(gt=0, le=60_000, description="milliseconds")
    duration: Duration
    serviceName: Name | None = None
    jitter: float = Field(default=0, ge=0, le=60_000, description="milliseconds, uniform +/-")
    probability: Probability = 1.0


class DatabaseOverloadStart(StrictModel):
    """POST /api/simulate/database-overload."""

    duration: Duration
    intensity: Literal["low", "medium", "high"]


class MemoryLeakStart(StrictModel):
    """POST /api/simulate/memory-leak: rate in MB/s, held to MEMORY_LEAK_CAP_MB."""

    duration: Duration
    rate: float = Field(gt=0, le=1_000_000, description="MB per second")


class SimulationQuery(StrictModel):
    """GET /api/simulations query string."""

    limit: int = Field(default=100, ge=1, le=1000)

