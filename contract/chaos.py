"""Failure simulations: the start requests of each kind and a simulation's record."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from contract.requests import Duration, Name, Probability, StrictModel

__all__ = [
    "INTENSITY_PRESSURE",
    "DatabaseOverloadStart",
    "Intensity",
    "MemoryLeakStart",
    "NetworkLatencyStart",
    "ServiceFailureStart",
    "SimulationEffect",
    "SimulationKind",
    "SimulationOut",
    "SimulationParams",
    "SimulationQuery",
    "SimulationStatus",
    "StopAllOut",
    "WriteFigures",
    "WriteLatencyChange",
]

# a figure keeps the JSON type it was given: 1000 stays 1000 and 0.5 stays 0.5
Number = int | float


class Intensity(StrEnum):
    """How hard a database overload presses: low, medium or high."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class SimulationKind(StrEnum):
    """What a simulation does: fail or delay a service's requests, overload the database, leak memory."""

    SERVICE_FAILURE = "service-failure"
    NETWORK_LATENCY = "network-latency"
    DATABASE_OVERLOAD = "database-overload"
    MEMORY_LEAK = "memory-leak"


class SimulationStatus(StrEnum):
    """Where a simulation is: in effect, ended on time, stopped, cut off by an engine stop, or never started."""

    ACTIVE = "active"
    COMPLETED = "completed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


class _GivenFields(BaseModel):
    """A record whose JSON holds exactly the fields it was given: each kind of simulation fills its own subset."""

    model_config = ConfigDict(extra="allow")

    @model_serializer(mode="wrap")
    def _given_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        given = self.model_fields_set | set(self.__pydantic_extra__ or ())
        return {k: v for k, v in data.items() if k in given}


class SimulationParams(_GivenFields):
    """What a simulation was started with (the fields of its start request that apply, plus capMb for a leak)."""

    # declared in the order PostgreSQL's jsonb keeps keys (shorter first, then by bytes), the order a record is read in
    mode: Literal["error", "kill"] | None = None
    rate: Number | None = None
    capMb: int | None = None
    jitter: Number | None = None
    latency: Number | None = None
    duration: Number | None = None
    intensity: Intensity | None = None
    statusCode: int | None = None
    probability: Number | None = None
    serviceName: str | None = None


class WriteFigures(BaseModel):
    """The engine's database writes in a window: batches committed and their commit time in ms (null when none)."""

    max: Number | None  # in jsonb key order, as SimulationParams
    p50: Number | None
    p95: Number | None
    batches: int


class WriteLatencyChange(BaseModel):
    """The engine's write latency before a database overload and while it ran."""

    before: WriteFigures
    during: WriteFigures


class SimulationEffect(_GivenFields):
    """What a simulation was measured to do, by kind; error when the measurement itself failed."""

    error: str | None = None  # in jsonb key order, as SimulationParams
    heldMb: int | None = None
    killed: str | None = None
    lockHolder: bool | None = None
    rssMbAtEnd: Number | None = None
    statements: int | None = None
    connections: int | None = None
    rssMbBefore: Number | None = None
    writeLatencyMs: WriteLatencyChange | None = None
    requestsAffected: int | None = None
    rssMbAfterRelease: Number | None = None


# what each intensity does to the engine's database: busy connections, and whether one of them holds a lock the
# engine's writes wait for
INTENSITY_PRESSURE: dict[Intensity, tuple[int, bool]] = {
    Intensity.LOW: (1, False), Intensity.MEDIUM: (3, False), Intensity.HIGH: (6, True)}


class SimulationOut(BaseModel):
    """One failure simulation; remainingMs while active; effect = what was measured (after it ends)."""

    id: int
    kind: SimulationKind
    target: str | None
    params: SimulationParams
    status: SimulationStatus
    startedAt: str
    endsAt: str
    endedAt: str | None
    remainingMs: float | None
    effect: SimulationEffect | None
    silence: bool = Field(default=False, description="its target's alerts were silenced while it ran")


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
    silence: bool = Field(default=False, description="silence the service's alerts while it runs (expected)")


class NetworkLatencyStart(StrictModel):
    """POST /api/simulate/network-latency (ms); without serviceName every service is delayed."""

    latency: float = Field(gt=0, le=60_000, description="milliseconds")
    duration: Duration
    serviceName: Name | None = None
    jitter: float = Field(default=0, ge=0, le=60_000, description="milliseconds, uniform +/-")
    probability: Probability = 1.0
    silence: bool = Field(default=False, description="silence the service's alerts while it runs (expected); "
                                                    "needs serviceName")

    @field_validator("silence")
    @classmethod
    def _silence_needs_a_service(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("serviceName") is None:
            raise ValueError("a silence needs serviceName (the service whose alerts it silences)")
        return value


class DatabaseOverloadStart(StrictModel):
    """POST /api/simulate/database-overload."""

    duration: Duration
    intensity: Intensity


class MemoryLeakStart(StrictModel):
    """POST /api/simulate/memory-leak: rate in MB/s, held to MEMORY_LEAK_CAP_MB."""

    duration: Duration
    rate: float = Field(gt=0, le=1_000_000, description="MB per second")


class SimulationQuery(StrictModel):
    """GET /api/simulations query string."""

    limit: int = Field(default=100, ge=1, le=1000)

