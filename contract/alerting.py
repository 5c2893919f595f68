"""Alerting: rules, the alerts they raise, and silences.

Alerts follow Prometheus' semantics: a rule's condition that holds makes an alert `pending`; held for
`forSeconds` it is `firing` (one notification, then one every `repeatSeconds` while it fires); once it stops
holding the alert is `resolved` (one notification). An alert's identity is its fingerprint: one alert per rule and
service. A silence matching an alert keeps it evaluated and shown, but not notified.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from contract.requests import MAX_ID, Id, Name, StrictModel, Text

__all__ = [
    "NEEDS_THRESHOLD",
    "SERVICELESS",
    "TRAFFIC_KINDS",
    "TRAFFIC_WINDOW_MAX_S",
    "AlertKind",
    "AlertOut",
    "AlertQuery",
    "AlertRuleIn",
    "AlertRuleOut",
    "AlertState",
    "Severity",
    "SilenceIn",
    "SilenceOut",
    "SilenceQuery",
    "SilenceState",
]


class AlertKind(StrEnum):
    """What a rule watches."""

    SERVICE_DOWN = "service-down"  # no instance of the service serves
    SERVICE_DEGRADED = "service-degraded"  # the service's aggregate state is degraded
    ERROR_RATE = "error-rate"  # % of routed requests that failed over the last windowSeconds, above threshold
    LATENCY_P95 = "latency-p95"  # p95 of routed requests over the last windowSeconds, in ms, above threshold
    BREAKER_OPEN = "breaker-open"  # the service's circuit breaker is open
    INSTANCES_BELOW = "instances-below"  # healthy instances fewer than threshold
    SLO_BURN = "slo-burn"  # the error budget burns faster than threshold over the long and the short window
    MONITOR_DATABASE = "monitor-database"  # the monitor's own PostgreSQL unreachable


# kinds that need a threshold, and kinds that watch no service
NEEDS_THRESHOLD = frozenset({AlertKind.ERROR_RATE, AlertKind.LATENCY_P95, AlertKind.INSTANCES_BELOW})
SERVICELESS = frozenset({AlertKind.MONITOR_DATABASE})
# kinds read from the engine's rolling window of routed traffic, which holds this many seconds
TRAFFIC_KINDS = frozenset({AlertKind.ERROR_RATE, AlertKind.LATENCY_P95})
TRAFFIC_WINDOW_MAX_S = 3600


class Severity(StrEnum):
    """How loud an alert is; a critical alert opens an incident."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class AlertState(StrEnum):
    """Where an alert is: its condition holds for less than forSeconds, for longer, or no more."""

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class AlertRuleIn(StrictModel):
    """POST and PUT /api/alert-rules. No `service` means every service (one alert each).

    A check that depends on `kind` is made on the field it is about, so a refusal names that field."""

    name: Name
    kind: AlertKind
    service: Name | None = Field(default=None, validate_default=True)
    threshold: float | None = Field(
        default=None, ge=0, le=1e9, validate_default=True,
        description="error-rate: percent; latency-p95: ms; instances-below: healthy instances; slo-burn: burn "
                    "rate (default 14.4)")
    windowSeconds: int = Field(
        default=300, ge=5, le=86_400, validate_default=True,
        description="error-rate and latency-p95: the window of routed traffic (at most 3600); slo-burn: the long "
                    "window (the short one is a twelfth of it)")
    forSeconds: int = Field(default=0, ge=0, le=86_400, description="how long the condition holds before firing")
    severity: Severity = Severity.WARNING
    channels: list[Id] = Field(default_factory=list, max_length=20, json_schema_extra={"uniqueItems": True},
                               description="alert channel ids")
    repeatSeconds: int | None = Field(default=None, ge=10, le=7 * 86_400,
                                      description="re-notify every this many seconds while firing; none = never")

    @field_validator("service")
    @classmethod
    def _service_fits_kind(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if kind in SERVICELESS and value is not None:
            raise ValueError(f"kind {kind.value} watches no service: leave service out")
        return value

    @field_validator("threshold")
    @classmethod
    def _threshold_fits_kind(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("kind")
        if kind in NEEDS_THRESHOLD and value is None:
            raise ValueError(f"threshold is required for kind {kind.value}")
        if kind is AlertKind.ERROR_RATE and value is not None and value > 100:
            raise ValueError("threshold of error-rate is a percent: at most 100")
        return value

    @field_validator("windowSeconds")
    @classmethod
    def _window_fits_kind(cls, value: int, info: ValidationInfo) -> int:
        kind = info.data.get("kind")
        if kind in TRAFFIC_KINDS and value > TRAFFIC_WINDOW_MAX_S:
            raise ValueError(f"{kind.value} reads the last {TRAFFIC_WINDOW_MAX_S} s of routed traffic at most")
        return value

    @field_validator("channels")
    @classmethod
    def _channels_once(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("channels must not repeat")
        return value


class AlertRuleOut(BaseModel):
    """A stored alert rule."""

    id: int
    name: str
    kind: AlertKind
    service: str | None
    threshold: float | None
    windowSeconds: int
    forSeconds: int
    severity: Severity
    channels: list[int]
    repeatSeconds: int | None
    createdAt: str


class AlertQuery(StrictModel):
    """GET /api/alerts query string."""

    state: AlertState | None = None
    silenced: bool | None = None
    service: Name | None = None
    limit: int = Field(default=200, ge=1, le=1000)


class AlertOut(BaseModel):
    """One alert: a rule's condition for one service (or for the monitor itself)."""

    fingerprint: str
    ruleId: int
    ruleName: str
    kind: AlertKind
    severity: Severity
    service: str | None
    state: AlertState
    silenced: bool
    value: float | None = Field(description="the measured figure the condition compared (None when unknown)")
    threshold: float | None
    summary: str
    activeAt: str = Field(description="when the condition began to hold")
    firedAt: str | None
    resolvedAt: str | None
    lastNotifiedAt: str | None
    incidentId: str | None
    expected: bool = Field(default=False, description="silenced by the silence of a failure simulation started "
                                                      "with silence: true")


class SilenceState(StrEnum):
    """Whether a silence is in effect now, later, or no more."""

    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"


class SilenceIn(StrictModel):
    """POST /api/silences: a service, a rule, or both; alerts matching all given parts are not notified."""

    service: Name | None = None
    rule: int | None = Field(default=None, ge=1, le=MAX_ID, description="alert rule id")
    startsAt: datetime
    endsAt: datetime
    comment: Text = Field(min_length=1, max_length=500)

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _zoned(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. 2026-01-01T00:00:00Z)")
        return value

    @field_validator("endsAt")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        starts = info.data.get("startsAt")
        if starts is not None and value <= starts:
            raise ValueError("endsAt must be after startsAt")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.service is None and self.rule is None:
            raise ValueError("name a service, a rule, or both")
        return self


class SilenceQuery(StrictModel):
    """GET /api/silences query string."""

    state: SilenceState | None = None
    limit: int = Field(default=200, ge=1, le=1000)


class SilenceOut(BaseModel):
    """A silence; DELETE expires it (endsAt becomes now) and it stays listed."""

    id: int
    service: str | None
    rule: int | None
    startsAt: str
    endsAt: str
    comment: str
    createdBy: str | None
    simulationId: int | None
    state: SilenceState
