"""Response shapes, for the OpenAPI document (the views build the same fields)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "AutoscalerOut",
    "DeletedOut",
    "ErrorOut",
    "HealthOut",
    "InstanceOut",
    "LoadTestDetailOut",
    "LoadTestOut",
    "LoadTestSampleOut",
    "LogOut",
    "LogsClearedOut",
    "OverviewOut",
    "ScaleOut",
    "ScalingEventOut",
    "ScalingOut",
    "ServiceOut",
    "ShardOut",
    "ShardsOut",
    "SimulationOut",
    "StopAllOut",
    "SystemMetricsOut",
    "TokenOut",
    "UserOut",
]

Status = Literal["healthy", "degraded", "unhealthy", "unknown"]


class ErrorOut(BaseModel):
    """Every error response."""

    error: str
    details: list[dict[str, Any]]


class InstanceOut(BaseModel):
    """One instance of a service."""

    id: int
    url: str
    status: Status
    lastHealthCheck: str | None
    latencyMs: float | None
    weight: int
    lastError: str | None


class ServiceOut(BaseModel):
    """The seed's Service, plus instances and registry settings."""

    id: int
    name: str
    url: str | None
    status: Status
    instanceCount: int
    load: int
    lastHealthCheck: str | None
    managed: bool
    healthPath: str
    metricsPath: str | None
    weight: int
    createdAt: str | None
    instances: list[InstanceOut]


class DeletedOut(BaseModel):
    """A deletion."""

    message: str
    id: int


class LogOut(BaseModel):
    """One log row."""

    id: int
    timestamp: str
    level: str
    source: str
    message: str
    metadata: dict[str, Any] | None


class LogsClearedOut(BaseModel):
    """DELETE /api/logs."""

    message: str
    deleted: int


class OverviewOut(BaseModel):
    """The seed's systemOverview; unknown figures are null."""

    activeServices: int
    totalServices: int
    requestsPerMin: float
    avgResponseTime: float | None
    errorRate: float | None
    systemStatus: Literal["healthy", "degraded", "unknown"]
    cpuPercent: float | None
    memoryMb: float | None


class ShardOut(BaseModel):
    """One daily partition of the metrics table (from/to null for the DEFAULT partition)."""

    id: str
    name: str
    from_: str | None = Field(alias="from")
    to: str | None
    rowEstimate: int | None
    sizeBytes: int
    status: Literal["default", "future", "active", "sealed", "expired"]


class ShardsOut(BaseModel):
    """GET /api/shards."""

    table: str
    partitionBy: str
    retentionDays: int
    partitionsAhead: int
    totalSizeBytes: int
    shards: list[ShardOut]
    rollup: dict[str, Any]


class SystemMetricsOut(BaseModel):
    """The seed's SystemMetrics; parts later capabilities own are null or empty until they exist."""

    systemOverview: OverviewOut
    loadBalancer: LoadBalancerOut
    circuitBreakers: list[BreakerOut]
    scaling: ScalingOut
    shards: list[ShardOut]
    resilience: ResilienceOut
    loadTest: LoadTestOut | None
    recentLogs: list[LogOut]


class HealthOut(BaseModel):
    """GET /api/health."""

    status: Literal["ok", "degraded"]
    engine: dict[str, Any]
    database: dict[str, Any]
    writer: dict[str, Any]
    simulations: dict[str, Any]


class TokenOut(BaseModel):
    """POST /api/auth/token."""

    token: str
    expiresAt: str
    role: Literal["viewer", "operator", "admin"]


class UserOut(BaseModel):
    """A user (never the password hash)."""

    id: int
    username: str
    role: Literal["viewer", "operator", "admin"]
    createdAt: str | None


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


class MessageOut(BaseModel):
    """An action's acknowledgement."""

    message: str


class LatencyOut(BaseModel):
    """Latency percentiles in ms (null when nothing was measured)."""

    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p999: float | None
    max: float | None
    mean: float | None


class LatencyPairOut(BaseModel):
    """Corrected (from the scheduled time) and uncorrected (from the send) latency."""

    corrected: LatencyOut
    uncorrected: LatencyOut


class LoadTestOut(BaseModel):
    """The seed's LoadTestStatus plus what an open-model run measures; status idle = no run yet."""

    status: Literal["idle", "running", "completed", "stopped", "interrupted", "failed"]
    id: int | None = None
    concurrentUsers: int | None = None
    requestsPerSecond: float | None = None
    duration: float | None = None
    targetService: str | None = None
    path: str | None = None
    method: str | None = None
    workers: int | None = None
    totalRequests: int | None = None
    successfulRequests: int | None = None
    failedRequests: int | None = None
    droppedRequests: int | None = None
    startTime: str | None = None
    endTime: str | None = None
    inFlight: int | None = None
    backlog: int | None = None
    achievedRps: float | None = None
    shortfallPercent: float | None = None
    elapsedSeconds: float | None = None
    sent: int | None = None
    errors: dict[str, int] | None = None
    latency: LatencyPairOut | None = None


class LoadTestSampleOut(BaseModel):
    """One second of a run."""

    second: int
    at: str
    sent: int
    ok: int
    failed: int
    dropped: int
    errors: dict[str, int]
    latency: LatencyPairOut


class LoadTestDetailOut(LoadTestOut):
    """A run with its per-second samples."""

    samples: list[LoadTestSampleOut]


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


class AutoscalerOut(BaseModel):
    """A service's autoscaler settings after a change."""

    enabled: bool
    minInstances: int
    maxInstances: int
    metric: Literal["inflight", "cpu", "p95"]
    target: float
    tolerance: float
    scaleUpWindowS: float
    scaleDownWindowS: float
    maxStep: int


class ScaleOut(BaseModel):
    """The seed's scale-up / scale-down answer."""

    message: str
    newInstanceCount: int


class ScalingServiceOut(BaseModel):
    """One service in SystemMetrics.scaling (load = requests in flight through the engine, measured)."""

    id: int
    name: str
    instanceCount: int
    load: int
    status: str
    managed: bool
    canScaleUp: bool
    canScaleDown: bool
    minInstances: int
    maxInstances: int
    autoscaler: dict[str, Any] | None


class ScalingOut(BaseModel):
    """The seed's scaling part of SystemMetrics."""

    totalInstances: int
    services: list[ScalingServiceOut]


class ScalingEventOut(BaseModel):
    """One scaling decision (manual, autoscaler or supervisor), including no change."""

    id: int
    serviceName: str
    direction: Literal["up", "down", "none"]
    fromCount: int
    toCount: int
    reason: str
    source: str
    metric: str | None
    metricValue: float | None
    target: float | None
    timestamp: str
