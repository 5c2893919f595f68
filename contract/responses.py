"""Responses of the registry and the system resources: services, health, overview, metrics, logs, shards, users."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contract.loadtest import LoadTestOut
from contract.roles import RoleName
from contract.scaling import ScalingOut
from contract.states import Availability, EngineHealth, HealthState, ShardStatus, SystemStatus
from contract.traffic import BreakerOut, LoadBalancerOut, ResilienceOut

__all__ = [
    "DatabaseHealthOut",
    "DeletedOut",
    "EngineStatusOut",
    "ErrorOut",
    "HealthOut",
    "InstanceOut",
    "LogOut",
    "LogsClearedOut",
    "MessageOut",
    "OverviewOut",
    "RollupOut",
    "ServiceOut",
    "ShardOut",
    "ShardsOut",
    "SimulationCountOut",
    "SystemMetricsOut",
    "TokenOut",
    "UserOut",
    "WriteLatencyOut",
    "WriterOut",
]


class ErrorOut(BaseModel):
    """Every error response."""

    error: str
    details: list[dict[str, Any]]


class InstanceOut(BaseModel):
    """One instance of a service."""

    id: int
    url: str
    status: HealthState
    lastHealthCheck: str | None
    latencyMs: float | None
    weight: int
    lastError: str | None


class ServiceOut(BaseModel):
    """A registered service: its aggregate health, its instances and registry settings."""

    id: int
    name: str
    url: str | None
    status: HealthState
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
    """One row of the event log."""

    id: int
    timestamp: str
    level: str  # DEBUG | INFO | WARN | ERROR as the engine writes them; a row is shown as stored
    source: str
    message: str
    metadata: dict[str, Any] | None


class LogsClearedOut(BaseModel):
    """DELETE /api/logs: how many rows went."""

    message: str
    deleted: int


class OverviewOut(BaseModel):
    """systemOverview: service counts and the last minute's traffic; unknown figures are null."""

    activeServices: int
    totalServices: int
    requestsPerMin: float
    avgResponseTime: float | None
    errorRate: float | None
    systemStatus: SystemStatus
    cpuPercent: float | None
    memoryMb: float | None


class ShardOut(BaseModel):
    """One daily partition of the metrics table (from/to null for the DEFAULT partition)."""

    model_config = ConfigDict(validate_by_name=True)

    id: str
    name: str
    from_: str | None = Field(validation_alias="from", serialization_alias="from")
    to: str | None
    rowEstimate: int | None
    sizeBytes: int
    status: ShardStatus


class RollupOut(BaseModel):
    """The per-minute rollup of the metrics table."""

    table: str
    bucket: str
    rowEstimate: int | None
    sizeBytes: int


class ShardsOut(BaseModel):
    """GET /api/shards: the partitions, the retention and the rollup."""

    table: str
    partitionBy: str
    retentionDays: int
    partitionsAhead: int
    totalSizeBytes: int
    shards: list[ShardOut]
    rollup: RollupOut


class SystemMetricsOut(BaseModel):
    """GET /api/metrics: every capability's summary in one answer; loadTest is null before any run."""

    systemOverview: OverviewOut
    loadBalancer: LoadBalancerOut
    circuitBreakers: list[BreakerOut]
    scaling: ScalingOut
    shards: list[ShardOut]
    resilience: ResilienceOut
    loadTest: LoadTestOut | None
    recentLogs: list[LogOut]


class EngineStatusOut(BaseModel):
    """HealthOut.engine: since when this engine runs and how many services it serves."""

    status: Availability
    startedAt: str
    uptimeSeconds: float
    services: int


class DatabaseHealthOut(BaseModel):
    """HealthOut.database: whether the database answers; `error` (present only when down) names the exception."""

    embedded: bool
    status: Availability
    error: str | None = Field(default=None, exclude_if=lambda v: v is None)


class WriteLatencyOut(BaseModel):
    """Commit time of the writer's batches over the window, ms (null when no batch committed)."""

    windowSeconds: int
    batches: int
    p50: float | None
    p95: float | None
    max: float | None


class WriterOut(BaseModel):
    """HealthOut.writer: the batch writer's buffer and counters."""

    databaseOk: bool
    pending: int
    written: int
    dropped: int
    rejected: int
    lastError: str | None
    lastSuccess: str | None
    writeLatencyMs: WriteLatencyOut


class SimulationCountOut(BaseModel):
    """HealthOut.simulations: how many failure simulations are in effect."""

    active: int


class HealthOut(BaseModel):
    """GET /api/health: the engine, its database, its writer and the simulations in effect."""

    status: EngineHealth
    engine: EngineStatusOut
    database: DatabaseHealthOut
    writer: WriterOut
    simulations: SimulationCountOut


class TokenOut(BaseModel):
    """POST /api/auth/token: a bearer token, when it expires, and its role."""

    token: str
    expiresAt: str
    role: RoleName


class UserOut(BaseModel):
    """A user (never the password hash)."""

    id: int
    username: str
    role: RoleName
    createdAt: str | None


class MessageOut(BaseModel):
    """An action's acknowledgement."""

    message: str
