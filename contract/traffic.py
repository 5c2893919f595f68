"""The traffic plane: the balancer's picks, circuit breakers and resilience counters."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from contract.requests import StrictModel
from contract.states import HealthState

__all__ = [
    "Algorithm",
    "AlgorithmChange",
    "BreakerChange",
    "BreakerOut",
    "BreakerState",
    "BreakersOut",
    "LoadBalancerOut",
    "PickOut",
    "ResilienceOut",
    "TransitionOut",
]


class BreakerState(StrEnum):
    """A circuit breaker's state: calls pass (CLOSED), are refused (OPEN), or a few trials pass (HALF_OPEN)."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class Algorithm(StrEnum):
    """The load-balancing algorithms, by the name the API takes (the API fields stay plain strings, so an unknown
    name is answered with 400 listing these)."""

    CONSISTENT_HASH = "consistent-hash"
    LEAST_LOAD = "least-load"
    P2C = "p2c"
    RANDOM = "random"
    ROUND_ROBIN = "round-robin"
    WEIGHTED = "weighted"


class PickOut(BaseModel):
    """One instance's share of the balancer's picks."""

    service: str
    instanceId: int
    url: str
    picks: int
    inFlight: int
    health: HealthState
    ejected: bool


class LoadBalancerOut(BaseModel):
    """GET /api/load-balancer and SystemMetrics.loadBalancer."""

    algorithm: str
    algorithms: list[str]
    totalPicks: int
    instances: list[PickOut]


class BreakerOut(BaseModel):
    """One service's breaker: live state, counters and thresholds."""

    serviceName: str
    state: BreakerState
    failureCount: int
    rejectedCount: int
    failureRate: float | None
    lastFailure: str | None
    failureThreshold: int
    failureRateThreshold: float
    windowSize: int
    minimumCalls: int
    slowCallMs: float | None
    timeout: int
    halfOpenCalls: int


class BreakersOut(BaseModel):
    """GET /api/circuit-breakers: how many breakers are in each state, and each breaker."""

    total: int
    closed: int
    open: int
    halfOpen: int
    breakers: list[BreakerOut]


class TransitionOut(BaseModel):
    """One breaker transition."""

    serviceName: str
    fromState: str
    toState: str
    reason: str
    at: str


class ResilienceOut(BaseModel):
    """SystemMetrics.resilience: rates over the window from real counters; null when nothing to divide."""

    windowSeconds: float
    requests: int
    retries: int
    retrySuccessRate: float | None
    fallbacks: int
    fallbackRate: float | None
    timeouts: int
    timeoutRate: float | None
    retryBudgetRefusals: int
    ejectedInstances: int


class AlgorithmChange(StrictModel):
    """PUT /api/load-balancer (the name is checked against the registry of algorithms)."""

    algorithm: str = Field(min_length=1, max_length=40, json_schema_extra={"enum": [a.value for a in Algorithm]})


class BreakerChange(StrictModel):
    """PUT /api/circuit-breakers/<serviceName>: any subset of the thresholds (slowCallMs null turns it off)."""

    failureThreshold: int = Field(default=None, ge=1, le=1000)  # type: ignore[assignment]
    failureRateThreshold: float = Field(default=None, gt=0, le=100)  # type: ignore[assignment]
    windowSize: int = Field(default=None, ge=1, le=1000)  # type: ignore[assignment]
    minimumCalls: int = Field(default=None, ge=1, le=1000)  # type: ignore[assignment]
    slowCallMs: float | None = Field(default=None, gt=0, le=600_000)
    timeout: int = Field(default=None, ge=1, le=3_600_000, description="OPEN duration, ms")  # type: ignore[assignment]
    halfOpenCalls: int = Field(default=None, ge=1, le=100)  # type: ignore[assignment]

