"""Scaling: scale-up/down answers, the autoscaler's settings, the fleet's scaling view and its decisions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from contract.requests import Name, StrictModel

__all__ = [
    "AutoscalerChange",
    "AutoscalerOut",
    "ScaleOut",
    "ScalingEventOut",
    "ScalingEventQuery",
    "ScalingOut",
    "ScalingServiceOut",
]


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


class AutoscalerChange(StrictModel):
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


class ScalingEventQuery(StrictModel):
    """GET /api/scaling/events query string."""

    service: Name | None = None
    limit: int = Field(default=100, ge=1, le=1000)

