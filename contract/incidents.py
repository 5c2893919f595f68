"""Incidents and SLOs: incidents opened by critical alerts, their timelines and statistics, and service SLOs."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, model_validator

from contract.alerting import Severity
from contract.requests import Name, StrictModel, Text

__all__ = [
    "AcknowledgeIn",
    "IncidentDetailOut",
    "IncidentOut",
    "IncidentQuery",
    "IncidentStatsOut",
    "IncidentStatsQuery",
    "IncidentStatus",
    "SloIn",
    "SloOut",
    "TimelineEventOut",
    "TimelineKind",
]


class IncidentStatus(StrEnum):
    """An incident is open while any of its alerts fires."""

    OPEN = "open"
    RESOLVED = "resolved"


class IncidentQuery(StrictModel):
    """GET /api/incidents query string."""

    status: IncidentStatus | None = None
    service: Name | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class IncidentOut(BaseModel):
    """An incident: opened by a critical alert of a service, resolved when all its alerts are."""

    id: str
    service: str | None
    status: IncidentStatus
    title: str
    severity: Severity
    startedAt: str
    resolvedAt: str | None
    acknowledgedAt: str | None
    acknowledgedBy: str | None
    expected: bool = Field(description="a failure simulation started with silence: true caused it")
    latestNote: str | None
    alerts: list[str] = Field(description="fingerprints of the alerts that belong to it")


class TimelineKind(StrEnum):
    """What a timeline event is."""

    ALERT = "alert"
    HEALTH = "health"
    BREAKER = "breaker"
    SIMULATION = "simulation"
    SCALING = "scaling"
    LOAD_TEST = "load-test"
    NOTE = "note"
    NOTIFICATION = "notification"


class TimelineEventOut(BaseModel):
    """One event on an incident's time axis; a span (a simulation, a load test) has an end."""

    at: str
    endAt: str | None = None
    kind: TimelineKind
    title: str
    detail: dict[str, Any] = Field(default_factory=dict)


class IncidentDetailOut(IncidentOut):
    """An incident with its timeline, oldest first."""

    timeline: list[TimelineEventOut]
    timelineTruncated: bool = Field(
        default=False, description="a source had more events than a timeline shows (the oldest are shown)")


class AcknowledgeIn(StrictModel):
    """POST /api/incidents/<id>/acknowledge."""

    note: Text = Field(default="", max_length=2000)


class IncidentStatsQuery(StrictModel):
    """GET /api/incidents/stats query string: one service (or all) over the last windowDays."""

    service: Name | None = None
    windowDays: int = Field(default=30, ge=1, le=365)


class IncidentStatsOut(BaseModel):
    """Incidents of a service over a window: how many, mean time to acknowledge and to resolve (seconds)."""

    service: str | None
    windowDays: int
    incidents: int
    mttaSeconds: float | None
    mttrSeconds: float | None


class SloIn(StrictModel):
    """PUT /api/services/<id>/slo: targets in percent over a rolling window of days."""

    availabilityTarget: float = Field(gt=0, lt=100, description="percent of routed requests that succeed")
    latencyThresholdMs: float | None = Field(default=None, gt=0, le=600_000)
    latencyTarget: float | None = Field(default=None, gt=0, lt=100,
                                        description="percent of routed requests answered within latencyThresholdMs")
    windowDays: int = Field(default=30, ge=1, le=90)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.latencyThresholdMs is None) != (self.latencyTarget is None):
            raise ValueError("latencyThresholdMs and latencyTarget go together")
        return self


class SloOut(BaseModel):
    """A service's SLO: its SLIs over the window, the error budget left and the burn rates (None when unknown)."""

    service: str
    availabilityTarget: float
    latencyThresholdMs: float | None
    latencyTarget: float | None
    windowDays: int
    availability: float | None = Field(description="percent of routed requests that succeeded over the window")
    latency: float | None = Field(description="percent answered within latencyThresholdMs over the window")
    requests: int
    errorBudgetRemaining: float | None = Field(description="share of the window's error budget left, 1 = untouched")
    burnRates: dict[Literal["5m", "30m", "1h", "6h"], float | None]
