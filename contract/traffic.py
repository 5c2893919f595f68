"""The traffic plane: the balancer's picks, circuit breakers and resilience counters."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from contract.requests import StrictModel
from contract.states import Status

__all__ = [
    "AlgorithmChange",
    "BreakerChange",
    "BreakerOut",
    "BreakersOut",
    "LoadBalancerOut",
    "PickOut",
    "ResilienceOut",
    "TransitionOut",
]


class PickOut(BaseModel):
    """One instance's share of the balancer's picks."""

    service: str
    instanceId: int
    url: str
    picks: int
    inFlight: int
    health: Status
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
    state: Literal["CLOSED", "OPEN", "HALF_OPEN"]
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
    """GET /api/circuit-breakers: the seed's counts and the list."""

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

    algorithm: str = Field(min_length=1, max_length=40)


class BreakerChange(StrictModel):
    """PUT /api/circuit-breakers/<serviceName>: any subset of the thresholds (slowCallMs null turns it off)."""

    failureThreshold: int = Field(default=None, ge=1, le=1000)  # type: ignore[assignment]
    failureRateThreshold: float = Field(default=None, gt=0, le=100)  # type: ignore[assignment]
    windowSize: int = Field(default=None, ge=1, le=1000)  # type: ignore[assignment]
    minimumCalls: int = Field(default=None, ge=1, le=1000)  # type: ignore[assignment]
    slowCallMs: float | None = Field(default=None, gt=0, le=600_000)
    timeout: int = Field(default=None, ge=1, le=3_600_000, description="OPEN duration, ms (seed name)")  # type: ignore[assignment]
    halfOpenCalls: int = Field(default=None, ge=1, le=100)  # type: ignore[assignment]

