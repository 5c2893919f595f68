"""Scaling: scale-up/down answers, the autoscaler's settings, the fleet's scaling view and its decisions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field

from contract.requests import Name, StrictModel

__all__ = [
    "METRICS",
    "AutoscalerChange",
    "AutoscalerConfig",
    "AutoscalerMetric",
    "AutoscalerOut",
    "AutoscalerSettingsOut",
    "ScaleOut",
    "ScalingDirection",
    "ScalingEventOut",
    "ScalingEventQuery",
    "ScalingOut",
    "ScalingServiceOut",
    "ScalingSource",
]


class AutoscalerMetric(StrEnum):
    """What the autoscaler measures, per instance."""

    INFLIGHT = "inflight"
    CPU = "cpu"
    P95 = "p95"


class ScalingDirection(StrEnum):
    """Which way a scaling decision moved the instance count."""

    UP = "up"
    DOWN = "down"
    NONE = "none"


class ScalingSource(StrEnum):
    """Who made a scaling decision."""

    MANUAL = "manual"
    AUTOSCALER = "autoscaler"
    SUPERVISOR = "supervisor"


# metric -> what it measures (per instance, averaged over the service's instances)
METRICS: dict[AutoscalerMetric, str] = {
    AutoscalerMetric.INFLIGHT: "requests in flight per instance",
    AutoscalerMetric.CPU: "CPU % per instance",
    AutoscalerMetric.P95: "p95 latency, ms",
}


@dataclass(frozen=True)
class AutoscalerConfig:
    """A service's autoscaler settings (a metric given as its name becomes the enum)."""

    metric: AutoscalerMetric = AutoscalerMetric.INFLIGHT
    target: float = 5.0
    tolerance: float = 0.1
    up_window_s: float = 0.0  # the HPA default: scale up at once
    down_window_s: float = 300.0  # the HPA default: 5 minutes
    max_step: int = 4

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}")
        object.__setattr__(self, "metric", AutoscalerMetric(self.metric))
        if self.target <= 0 or not 0 <= self.tolerance < 1 or self.max_step < 1:
            raise ValueError("target must be > 0, tolerance in [0, 1), max_step >= 1")
        if self.up_window_s < 0 or self.down_window_s < 0:
            raise ValueError("stabilization windows must be >= 0")


class AutoscalerSettingsOut(BaseModel):
    """A service's autoscaler settings in the API's names."""

    metric: AutoscalerMetric
    target: float
    tolerance: float
    scaleUpWindowS: float
    scaleDownWindowS: float
    maxStep: int

    @classmethod
    def of(cls, config: AutoscalerConfig) -> AutoscalerSettingsOut:
        """The settings of a config."""
        return cls(metric=config.metric, target=config.target, tolerance=config.tolerance,
                   scaleUpWindowS=config.up_window_s, scaleDownWindowS=config.down_window_s, maxStep=config.max_step)


class AutoscalerOut(BaseModel):
    """A service's autoscaler settings after a change."""

    enabled: bool
    minInstances: int
    maxInstances: int
    metric: AutoscalerMetric
    target: float
    tolerance: float
    scaleUpWindowS: float
    scaleDownWindowS: float
    maxStep: int


class ScaleOut(BaseModel):
    """The scale-up / scale-down answer."""

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
    autoscaler: AutoscalerSettingsOut | None


class ScalingOut(BaseModel):
    """The scaling part of SystemMetrics: instances per service and what scaling may do now."""

    totalInstances: int
    services: list[ScalingServiceOut]


class ScalingEventOut(BaseModel):
    """One scaling decision (manual, autoscaler or supervisor), including no change."""

    id: int
    serviceName: str
    direction: ScalingDirection
    fromCount: int
    toCount: int
    reason: str
    source: str  # a ScalingSource value; documented as a plain string
    metric: str | None
    metricValue: float | None
    target: float | None
    timestamp: str


class AutoscalerChange(StrictModel):
    """PUT /api/services/<id>/autoscaler: on/off, the HPA settings (any subset) and the instance bounds."""

    enabled: bool
    metric: AutoscalerMetric | None = None
    target: float | None = Field(default=None, gt=0, le=1_000_000)
    tolerance: float | None = Field(default=None, ge=0, lt=1)
    scaleUpWindowS: float | None = Field(default=None, ge=0, le=3600)
    scaleDownWindowS: float | None = Field(default=None, ge=0, le=3600)
    maxStep: int | None = Field(default=None, ge=1, le=100)
    minInstances: int | None = Field(default=None, ge=1, le=100)
    maxInstances: int | None = Field(default=None, ge=1, le=100)


class ScalingEventQuery(StrictModel):
    """GET /api/scaling/events query string."""

    service: Name | None = None
    limit: int = Field(default=100, ge=1, le=1000)
