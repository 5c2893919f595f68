"""SQLAlchemy 2 models: the tables PostgreSQL holds (the alerting ones are in db.alerting_models)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "AuditRow",
    "Base",
    "BreakerTransitionRow",
    "CircuitBreakerRow",
    "Instance",
    "InstanceCheckDay",
    "InstanceCheckMinute",
    "InstanceHealthTransition",
    "LoadTest",
    "LoadTestSample",
    "LogEntry",
    "MetricMinute",
    "MetricRow",
    "ScalingEvent",
    "Service",
    "ServiceHealthTransition",
    "Simulation",
    "User",
]

TS = DateTime(timezone=True)


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Service(Base):
    """A registered service; its status aggregates its instances."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="unknown", server_default="unknown")
    health_path: Mapped[str] = mapped_column(String(255), default="/health", server_default="/health")
    metrics_path: Mapped[str | None] = mapped_column(String(255))
    weight: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    managed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    launch_command: Mapped[str | None] = mapped_column(Text)  # managed: argv with {port}, run on loopback
    min_instances: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    max_instances: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    autoscaler: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # None = off
    last_health_check: Mapped[datetime | None] = mapped_column(TS)
    created_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    instances: Mapped[list[Instance]] = relationship(
        back_populates="service", cascade="all, delete-orphan", order_by="Instance.id", lazy="selectin"
    )


class Instance(Base):
    """One URL serving a service; health is checked per instance."""

    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("service_id", "url", name="uq_instances_service_url"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(255))
    weight: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    status: Mapped[str] = mapped_column(String(20), default="unknown", server_default="unknown")
    last_health_check: Mapped[datetime | None] = mapped_column(TS)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    service: Mapped[Service] = relationship(back_populates="instances")


class CircuitBreakerRow(Base):
    """Persisted state and thresholds of one service's circuit breaker."""

    __tablename__ = "circuit_breakers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_name: Mapped[str] = mapped_column(String(100), unique=True)
    state: Mapped[str] = mapped_column(String(20), default="CLOSED", server_default="CLOSED")
    failure_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failure_threshold: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    timeout_ms: Mapped[int] = mapped_column(Integer, default=60000, server_default="60000")
    failure_rate_threshold: Mapped[float] = mapped_column(Float, default=50.0, server_default="50")
    window_size: Mapped[int] = mapped_column(Integer, default=20, server_default="20")
    minimum_calls: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    slow_call_ms: Mapped[float | None] = mapped_column(Float)
    half_open_calls: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_failure: Mapped[datetime | None] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


class BreakerTransitionRow(Base):
    """One state change of a breaker, for timelines."""

    __tablename__ = "circuit_breaker_transitions"
    __table_args__ = (Index("ix_breaker_transitions_service_at", "service_name", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    service_name: Mapped[str] = mapped_column(String(100))
    from_state: Mapped[str] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(TS)


class MetricRow(Base):
    """One service's measurements for one time bucket; NULL means not measured.

    Range-partitioned by day (engine.store.maintenance keeps the partitions), so the model
    maps the parent table and PostgreSQL routes each row to its day.
    """

    __tablename__ = "metrics"

    service_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(TS, primary_key=True)
    bucket_seconds: Mapped[float] = mapped_column(Float)
    request_count: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    latency_avg_ms: Mapped[float | None] = mapped_column(Float)
    latency_p50_ms: Mapped[float | None] = mapped_column(Float)
    latency_p95_ms: Mapped[float | None] = mapped_column(Float)
    latency_p99_ms: Mapped[float | None] = mapped_column(Float)
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    memory_mb: Mapped[float | None] = mapped_column(Float)
    instances_scraped: Mapped[int] = mapped_column(Integer, default=0)


class MetricMinute(Base):
    """One service's metrics rolled up per minute (a trigger keeps it; sums and maxima so rows add up)."""

    __tablename__ = "metrics_1m"

    service_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    minute: Mapped[datetime] = mapped_column(TS, primary_key=True)
    buckets: Mapped[int] = mapped_column(Integer)
    bucket_seconds: Mapped[float] = mapped_column(Float)
    request_count: Mapped[int] = mapped_column(BigInteger)
    error_count: Mapped[int] = mapped_column(BigInteger)
    latency_requests: Mapped[int] = mapped_column(BigInteger)  # requests in buckets that measured latency
    latency_sum_ms: Mapped[float] = mapped_column(Float)  # sum of avg x requests
    p50_sum_ms: Mapped[float] = mapped_column(Float)  # sum of p50 x requests
    p95_max_ms: Mapped[float | None] = mapped_column(Float)
    p99_max_ms: Mapped[float | None] = mapped_column(Float)
    cpu_sum: Mapped[float] = mapped_column(Float)
    cpu_n: Mapped[int] = mapped_column(Integer)
    memory_sum_mb: Mapped[float] = mapped_column(Float)
    memory_n: Mapped[int] = mapped_column(Integer)


class LogEntry(Base):
    """A structured event: level, source, message, JSON metadata."""

    __tablename__ = "logs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(TS, index=True)
    level: Mapped[str] = mapped_column(String(10), index=True)
    source: Mapped[str] = mapped_column(String(100), index=True)
    message: Mapped[str] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)


class AuditRow(Base):
    """One mutating API call: who, from where, what, on what, and how it ended; append-only (a trigger refuses
    changes but retention's, see db.audit)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(TS, index=True)
    actor: Mapped[str | None] = mapped_column(String(100))  # the token's user; None without a valid token
    actor_role: Mapped[str | None] = mapped_column(String(20))
    client: Mapped[str | None] = mapped_column(String(64))  # the caller's address
    method: Mapped[str] = mapped_column(String(10))
    route: Mapped[str] = mapped_column(String(200))  # the route template; the path when no route matched
    action: Mapped[str | None] = mapped_column(String(100))  # the view, e.g. services.create_service
    target: Mapped[str | None] = mapped_column(String(200))  # e.g. service_id=12; a login's attempted user name
    outcome: Mapped[int] = mapped_column(SmallInteger)  # the HTTP status sent
    outcome_text: Mapped[str | None] = mapped_column(String(200))  # the error sent, for an error status


class LoadTest(Base):
    """One load test run and its totals."""

    __tablename__ = "load_tests"
    __table_args__ = (Index("ix_load_tests_started", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    concurrent_users: Mapped[int] = mapped_column(Integer)
    requests_per_second: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float)
    target_service: Mapped[str | None] = mapped_column(String(100))
    path: Mapped[str | None] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10), server_default="GET")
    workers: Mapped[int] = mapped_column(Integer, server_default="1")
    total_requests: Mapped[int] = mapped_column(Integer, default=0)
    successful_requests: Mapped[int] = mapped_column(Integer, default=0)
    failed_requests: Mapped[int] = mapped_column(Integer, default=0)
    dropped_requests: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(TS)
    ended_at: Mapped[datetime | None] = mapped_column(TS)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    shape: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # {startRps, stages, requests, routeKey} it had
    engine_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the engine that started it (db.cluster_models)


class LoadTestSample(Base):
    """One second of a load test: counts and latency percentiles (ms; corrected = from the scheduled time)."""

    __tablename__ = "load_test_samples"

    load_test_id: Mapped[int] = mapped_column(ForeignKey("load_tests.id", ondelete="CASCADE"), primary_key=True)
    second: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(TS)
    sent: Mapped[int] = mapped_column(Integer)
    ok: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    dropped: Mapped[int] = mapped_column(Integer)
    errors: Mapped[dict[str, int]] = mapped_column(JSONB)
    latency: Mapped[dict[str, Any]] = mapped_column(JSONB)


class Simulation(Base):
    """One failure simulation with its end time."""

    __tablename__ = "simulations"
    __table_args__ = (Index("ix_simulations_started", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(100))  # a service name; None = every service / the engine
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(TS)
    ends_at: Mapped[datetime] = mapped_column(TS)
    ended_at: Mapped[datetime | None] = mapped_column(TS)
    silence: Mapped[bool] = mapped_column(Boolean, server_default="false")  # its target's alerts are silenced
    effect: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # what was measured while it ran
    engine_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the engine that started it (db.cluster_models)


class ScalingEvent(Base):
    """An instance count change and why it happened."""

    __tablename__ = "scaling_events"
    __table_args__ = (Index("ix_scaling_events_service_timestamp", "service_name", "timestamp"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_name: Mapped[str] = mapped_column(String(100), index=True)
    direction: Mapped[str] = mapped_column(String(10))  # up, down, none
    from_count: Mapped[int] = mapped_column(Integer)
    to_count: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(TS)
    source: Mapped[str] = mapped_column(String(20), server_default="manual")  # manual, autoscaler, supervisor
    metric: Mapped[str | None] = mapped_column(String(30))
    metric_value: Mapped[float | None] = mapped_column(Float)
    target: Mapped[float | None] = mapped_column(Float)


class User(Base):
    """A dashboard/API user with a role (viewer, operator, admin)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    # every token carries the version it was issued at; raising it ends them all (logout, new password or role)
    token_version: Mapped[int] = mapped_column(Integer, server_default="0", default=0)


# health history (migration 0008): state changes kept exactly, checks rolled up per instance per minute and per day


class InstanceHealthTransition(Base):
    """One damped state change of an instance, with the check that caused it; to 'unknown' when observation
    stopped (engine stopped, instance removed)."""

    __tablename__ = "instance_health_transitions"
    __table_args__ = (
        Index("ix_instance_health_transitions_service_at", "service_id", "at"),
        Index("ix_instance_health_transitions_instance_at", "instance_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    service_id: Mapped[int] = mapped_column(Integer)
    instance_id: Mapped[int] = mapped_column(Integer)
    from_state: Mapped[str] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(TS)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class ServiceHealthTransition(Base):
    """One change of a service's aggregate state."""

    __tablename__ = "service_health_transitions"
    __table_args__ = (Index("ix_service_health_transitions_service_at", "service_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    service_id: Mapped[int] = mapped_column(Integer)
    from_state: Mapped[str] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(TS)


class InstanceCheckMinute(Base):
    """One instance's checks in one minute (counts by raw result, latency sum and max): rows add up, so a
    minute written twice (before and after a restart) is summed. Range-partitioned by day."""

    __tablename__ = "instance_checks_1m"

    service_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    minute: Mapped[datetime] = mapped_column(TS, primary_key=True)
    instance_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checks: Mapped[int] = mapped_column(Integer)
    up: Mapped[int] = mapped_column(Integer)  # healthy results
    degraded: Mapped[int] = mapped_column(Integer)
    down: Mapped[int] = mapped_column(Integer)  # unhealthy results
    latency_n: Mapped[int] = mapped_column(Integer)  # checks that measured a latency (not errors or timeouts)
    latency_sum_ms: Mapped[float] = mapped_column(Float)
    latency_max_ms: Mapped[float | None] = mapped_column(Float)


class InstanceCheckDay(Base):
    """The same counts per instance per UTC day: what long windows and daily bars read."""

    __tablename__ = "instance_checks_1d"

    service_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    instance_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checks: Mapped[int] = mapped_column(Integer)
    up: Mapped[int] = mapped_column(Integer)
    degraded: Mapped[int] = mapped_column(Integer)
    down: Mapped[int] = mapped_column(Integer)
    latency_n: Mapped[int] = mapped_column(Integer)
    latency_sum_ms: Mapped[float] = mapped_column(Float)
    latency_max_ms: Mapped[float | None] = mapped_column(Float)
