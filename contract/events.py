"""Values the engine emits for the batch writer: one frozen dataclass per kind of row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "AlertEvent",
    "AuditEvent",
    "BreakerEvent",
    "CheckRollupEvent",
    "DeliveryRecord",
    "Event",
    "IncidentEvent",
    "InstanceHealthEvent",
    "InstanceTransitionEvent",
    "LoadTestProgress",
    "LoadTestSampleEvent",
    "LogEvent",
    "MetricEvent",
    "ServiceHealthEvent",
    "ServiceTransitionEvent",
    "SloMinuteEvent",
]


@dataclass(frozen=True)
class LogEvent:
    """A row for the logs table."""

    timestamp: datetime
    level: str
    source: str
    message: str
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class AuditEvent:
    """A row for audit_log: one mutating API call as it ended (never a body, a password or a token)."""

    at: datetime
    actor: str | None
    actor_role: str | None
    client: str | None
    method: str
    route: str
    action: str | None
    target: str | None
    outcome: int
    outcome_text: str | None


@dataclass(frozen=True)
class MetricEvent:
    """A row for the metrics table: one service, one bucket; None = not measured."""

    service_name: str
    timestamp: datetime
    bucket_seconds: float
    request_count: int
    error_count: int
    latency_avg_ms: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    cpu_percent: float | None
    memory_mb: float | None
    instances_scraped: int


@dataclass(frozen=True)
class InstanceHealthEvent:
    """The latest check of one instance (only the newest per instance is written)."""

    instance_id: int
    status: str
    checked_at: datetime
    latency_ms: float | None
    error: str | None


@dataclass(frozen=True)
class ServiceHealthEvent:
    """A service's aggregate status after a round of checks."""

    service_id: int
    status: str
    checked_at: datetime


@dataclass(frozen=True)
class BreakerEvent:
    """A breaker transition: a timeline row, and the breaker's current state."""

    service_name: str
    from_state: str
    to_state: str
    reason: str
    at: datetime
    failure_count: int
    last_failure: datetime | None


@dataclass(frozen=True)
class LoadTestSampleEvent:
    """A row for load_test_samples: one second of a run."""

    load_test_id: int
    second: int
    at: datetime
    sent: int
    ok: int
    failed: int
    dropped: int
    errors: dict[str, int]
    latency: dict[str, Any]


@dataclass(frozen=True)
class LoadTestProgress:
    """A load test's running totals (only the newest per run is written)."""

    load_test_id: int
    status: str
    total_requests: int
    successful_requests: int
    failed_requests: int
    dropped_requests: int
    ended_at: datetime | None
    summary: dict[str, Any]


@dataclass(frozen=True)
class IncidentEvent:
    """An incident's state as the engine keeps it (only the newest per incident is written; the acknowledgement
    columns are the API's and are left as they are)."""

    id: uuid.UUID
    service_name: str | None
    status: str
    title: str
    severity: str
    started_at: datetime
    resolved_at: datetime | None
    expected: bool
    fingerprints: tuple[str, ...]


@dataclass(frozen=True)
class SloMinuteEvent:
    """Routed requests of a service with an SLO in one minute; added to what the row holds (a minute written
    before and after a restart sums)."""

    service_name: str
    minute: datetime
    requests: int
    errors: int
    slow: int


@dataclass(frozen=True)
class InstanceTransitionEvent:
    """A damped state change of an instance, with the check that caused it (none for 'unknown': observation
    stopped)."""

    service_id: int
    instance_id: int
    from_state: str
    to_state: str
    at: datetime
    latency_ms: float | None
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class ServiceTransitionEvent:
    """A change of a service's aggregate state."""

    service_id: int
    from_state: str
    to_state: str
    at: datetime


@dataclass(frozen=True)
class CheckRollupEvent:
    """One instance's checks in one minute (or the part of it seen before a stop): counts that add up."""

    service_id: int
    instance_id: int
    minute: datetime
    checks: int
    up: int
    degraded: int
    down: int
    latency_n: int
    latency_sum_ms: float
    latency_max_ms: float | None


@dataclass(frozen=True)
class DeliveryRecord:
    """A notification's delivery as it stands (only the newest per id is written; the row is created by the first).

    channel_id of a channel deleted meanwhile is written as NULL; the payload holds no secret."""

    id: uuid.UUID
    channel_id: int | None
    channel_name: str
    fingerprint: str | None
    event: str
    status: str
    attempts: int
    last_error: str | None
    payload: dict[str, Any]
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class AlertEvent:
    """An alert's state at `at`: its `alerts` row (the newest per fingerprint is kept), and an `alert_events` row
    when `changed` (its state or silencing changed then)."""

    fingerprint: str
    rule_id: int
    rule_name: str
    kind: str
    severity: str
    service_name: str | None
    state: str
    silenced: bool
    value: float | None
    threshold: float | None
    summary: str
    active_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    last_notified_at: datetime | None
    incident_id: uuid.UUID | None
    at: datetime
    changed: bool


Event = (
    LogEvent | MetricEvent | InstanceHealthEvent | ServiceHealthEvent | BreakerEvent | LoadTestSampleEvent
    | LoadTestProgress | InstanceTransitionEvent | ServiceTransitionEvent | CheckRollupEvent | IncidentEvent
    | SloMinuteEvent | DeliveryRecord | AlertEvent | AuditEvent
)
