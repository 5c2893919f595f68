"""Response shapes, for the OpenAPI document (the views build the same fields)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from contract.loadtest import LoadTestOut
from contract.scaling import ScalingOut
from contract.states import Status
from contract.traffic import BreakerOut, LoadBalancerOut, ResilienceOut

__all__ = [
    "DeletedOut",
    "ErrorOut",
    "HealthOut",
    "InstanceOut",
    "LogOut",
    "LogsClearedOut",
    "OverviewOut",
    "ServiceOut",
    "ShardOut",
    "ShardsOut",
    "SystemMetricsOut",
    "TokenOut",
    "UserOut",
]



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


class MessageOut(BaseModel):
    """An action's acknowledgement."""

    message: str


