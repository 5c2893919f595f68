"""Pydantic schemas of request bodies and query strings; field names are the seed's camelCase."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "AutoscalerChange",
    "DatabaseOverloadStart",
    "InstanceIn",
    "LoadTestQuery",
    "LoadTestStart",
    "LogQuery",
    "MemoryLeakStart",
    "NetworkLatencyStart",
    "ScalingEventQuery",
    "ServiceCreate",
    "ServiceFailureStart",
    "ServiceUpdate",
    "SimulationQuery",
    "TokenRequest",
    "UserCreate",
    "check_url",
]

Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Path = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^/[^\s?#]*$")]
MAX_INSTANCES = 50


def check_url(value: str) -> str:
    """An http(s) base URL with a host and no credentials, query or fragment; no trailing slash."""
    value = value.strip()
    if len(value) > 255:
        raise ValueError("must be at most 255 characters")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"}:
        raise ValueError("must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value.rstrip("/")


Url = Annotated[str, AfterValidator(check_url)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


def _launch_command(value: str) -> str:
    value = _no_nul(value.strip())
    if "{port}" not in value:
        raise ValueError("must contain {port}, where the engine puts each instance's loopback port")
    if len(value) > 1000:
        raise ValueError("must be at most 1000 characters")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class InstanceIn(_Strict):
    """An instance with a balancer weight (a bare URL string means weight 1, or unchanged on PUT)."""

    url: Url
    weight: int = Field(ge=1, le=1000)


InstanceItem = Url | InstanceIn


def _specs(items: list[str | InstanceIn]) -> dict[str, int | None]:
    """URL -> weight (None when given as a bare URL), in order, duplicates dropped."""
    out: dict[str, int | None] = {}
    for item in items:
        url, weight = (item, None) if isinstance(item, str) else (item.url, item.weight)
        out.setdefault(url, weight)
    return out


class ServiceCreate(_Strict):
    """POST /api/services. `url` alone means one instance, as in the seed."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True,
        json_schema_extra={"anyOf": [{"required": ["url"]}, {"required": ["instances"]},
                                     {"required": ["launchCommand"]}]},
    )

    name: Name
    url: Url | None = None
    instances: list[InstanceItem] | None = Field(default=None, min_length=1, max_length=MAX_INSTANCES)
    healthPath: Path = "/health"
    metricsPath: Path | None = None
    weight: int = Field(default=1, ge=1, le=1000)
    launchCommand: Annotated[str, AfterValidator(_launch_command)] | None = Field(
        default=None, description="managed service (admin only): a command with {port}; the engine runs it")
    minInstances: int = Field(default=1, ge=1, le=100)
    maxInstances: int = Field(default=10, ge=1, le=100)

    def instance_specs(self) -> dict[str, int | None]:
        """url first, then instances: URL -> weight (None = default), without duplicates."""
        return _specs([*([self.url] if self.url else []), *(self.instances or [])])


class ServiceUpdate(_Strict):
    """PUT /api/services/<id>: every field optional; status, load and counts are measured, not set."""

    name: Name | None = None
    instances: list[InstanceItem] | None = Field(default=None, min_length=1, max_length=MAX_INSTANCES)
    healthPath: Path | None = None
    metricsPath: Path | None = None
    weight: int | None = Field(default=None, ge=1, le=1000)

    def instance_specs(self) -> dict[str, int | None] | None:
        """The new instances, URL -> weight (None = keep or default), or None when unchanged."""
        return None if self.instances is None else _specs(self.instances)


class LogQuery(_Strict):
    """GET /api/logs query string."""

    limit: int = Field(default=100, ge=1, le=1000)
    level: Literal["DEBUG", "INFO", "WARN", "ERROR"] | None = None
    source: Text | None = Field(default=None, max_length=100)
    q: Text | None = Field(default=None, max_length=200)
    since: datetime | None = None


class TokenRequest(BaseModel):
    """POST /api/auth/token (whitespace in a password is part of it)."""

    model_config = ConfigDict(extra="forbid")

    username: Text = Field(min_length=1, max_length=100)
    password: Text = Field(min_length=1, max_length=200)


class UserCreate(BaseModel):
    """POST /api/users (admin)."""

    model_config = ConfigDict(extra="forbid")

    username: Name
    password: Text = Field(min_length=8, max_length=200)
    role: Literal["viewer", "operator", "admin"]


class AlgorithmChange(_Strict):
    """PUT /api/load-balancer (the name is checked against the registry of algorithms)."""

    algorithm: str = Field(min_length=1, max_length=40)


class BreakerChange(_Strict):
    """PUT /api/circuit-breakers/<serviceName>: any subset of the thresholds (slowCallMs null turns it off)."""

    failureThreshold: int = Field(default=None, ge=1, le=1000)  # type: ignore[assignment]
    failureRateThreshold: float = Field(default=None, gt=0, le=100)  # type: ignore[assignment]
    windowSize: int = Field(default=None, ge=1, le=1000)  # type: ignore[assignment]
    minimumCalls: int = Field(default=None, ge=1, le=1000)  # type: ignore[assignment]
    slowCallMs: float | None = Field(default=None, gt=0, le=600_000)
    timeout: int = Field(default=None, ge=1, le=3_600_000, description="OPEN duration, ms (seed name)")  # type: ignore[assignment]
    halfOpenCalls: int = Field(default=None, ge=1, le=100)  # type: ignore[assignment]


class LoadTestStart(_Strict):
    """POST /api/load-test/start (duration in seconds, as in the seed; path may carry a query string)."""

    concurrentUsers: int = Field(ge=1, le=1_000_000)
    requestsPerSecond: float = Field(gt=0, le=1_000_000)
    duration: float = Field(gt=0, le=1_000_000, description="seconds")
    targetService: Name | None = None
    path: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^/[^\s#]*$")] = "/"
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] = "GET"


class LoadTestQuery(_Strict):
    """GET /api/load-tests query string."""

    limit: int = Field(default=50, ge=1, le=500)


Duration = Annotated[float, Field(gt=0, le=86_400_000, description="milliseconds (the seed's unit)")]
Probability = Annotated[float, Field(gt=0, le=1, description="share of requests affected, 0..1")]


class ServiceFailureStart(_Strict):
    """POST /api/simulate/service-failure: fail requests (connection error or statusCode), or kill an instance."""

    serviceName: Name
    duration: Duration
    probability: Probability = 1.0
    statusCode: int | None = Field(default=None, ge=400, le=599)
    mode: Literal["error", "kill"] = "error"


class NetworkLatencyStart(_Strict):
    """POST /api/simulate/network-latency (ms); without serviceName every service is delayed."""

    latency: float = Field(gt=0, le=60_000, description="milliseconds")
    duration: Duration
    serviceName: Name | None = None
    jitter: float = Field(default=0, ge=0, le=60_000, description="milliseconds, uniform +/-")
    probability: Probability = 1.0


class DatabaseOverloadStart(_Strict):
    """POST /api/simulate/database-overload."""

    duration: Duration
    intensity: Literal["low", "medium", "high"]


class MemoryLeakStart(_Strict):
    """POST /api/simulate/memory-leak: rate in MB/s, held to MEMORY_LEAK_CAP_MB."""

    duration: Duration
    rate: float = Field(gt=0, le=1_000_000, description="MB per second")


class SimulationQuery(_Strict):
    """GET /api/simulations query string."""

    limit: int = Field(default=100, ge=1, le=1000)


class AutoscalerChange(_Strict):
    """PUT /api/services/<id>/autoscaler: on/off, the HPA settings (any subset) and the instance bounds."""

    enabled: bool
    metric: Literal["inflight", "cpu", "p95"] | None = None
    target: float | None = Field(default=None, gt=0, le=1_000_000)
    tolerance: float | None = Field(default=None, ge=0, lt=1)
    scaleUpWindowS: float | None = Field(default=None, ge=0, le=3600)
    scaleDownWindowS: float | None = Field(default=None, ge=0, le=3600)
    maxStep: int | None = Field(default=None, ge=1, le=100)
    minInstances: int | None = Field(default=None, ge=1, le=100)
    maxInstances: int | None = Field(default=None, ge=1, le=100)


class ScalingEventQuery(_Strict):
    """GET /api/scaling/events query string."""

    service: Name | None = None
    limit: int = Field(default=100, ge=1, le=1000)
