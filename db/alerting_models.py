"""SQLAlchemy 2 models of alerting: rules, alerts and their events, silences, channels and deliveries, incidents
and their notes, SLOs and their per-minute counts.

Their tables join db.models.Base's metadata when the db package is imported (db/__init__.py imports this module).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, Uuid, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.models import TS, Base

__all__ = [
    "AlertChannelRow",
    "AlertEventRow",
    "AlertRow",
    "AlertRuleRow",
    "DeliveryRow",
    "IncidentNoteRow",
    "IncidentRow",
    "SilenceRow",
    "SloMinuteRow",
    "SloRow",
]


class AlertRuleRow(Base):
    """An alert rule (contract.alerting.AlertRuleIn)."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(30))
    service_name: Mapped[str | None] = mapped_column(String(100))
    threshold: Mapped[float | None] = mapped_column(Float)
    window_seconds: Mapped[int] = mapped_column(Integer)
    for_seconds: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(10))
    channels: Mapped[list[int]] = mapped_column(ARRAY(Integer), server_default="{}")
    repeat_seconds: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


class AlertRow(Base):
    """The current state of one alert (a rule for one service), keyed by its fingerprint."""

    __tablename__ = "alerts"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule_id: Mapped[int] = mapped_column(Integer)
    rule_name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(30))
    severity: Mapped[str] = mapped_column(String(10))
    service_name: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(10))
    silenced: Mapped[bool] = mapped_column(Boolean, server_default="false")
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text)
    active_at: Mapped[datetime] = mapped_column(TS)
    fired_at: Mapped[datetime | None] = mapped_column(TS)
    resolved_at: Mapped[datetime | None] = mapped_column(TS)
    last_notified_at: Mapped[datetime | None] = mapped_column(TS)
    incident_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    updated_at: Mapped[datetime] = mapped_column(TS)


class AlertEventRow(Base):
    """One state change of one alert (append-only)."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[int] = mapped_column(Integer)
    rule_name: Mapped[str] = mapped_column(String(100))
    service_name: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(10))
    silenced: Mapped[bool] = mapped_column(Boolean)
    value: Mapped[float | None] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(TS)
    incident_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class SilenceRow(Base):
    """A silence: matching alerts are evaluated and shown, not notified."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_name: Mapped[str | None] = mapped_column(String(100))
    rule_id: Mapped[int | None] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(TS)
    ends_at: Mapped[datetime] = mapped_column(TS)
    comment: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(100))
    simulation_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


class AlertChannelRow(Base):
    """A notification channel; config holds its secrets (never returned by the API)."""

    __tablename__ = "alert_channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(10))
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


class DeliveryRow(Base):
    """One notification to one channel and the outcome of its attempts."""

    __tablename__ = "deliveries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("alert_channels.id", ondelete="SET NULL"))
    channel_name: Mapped[str] = mapped_column(String(100))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(TS)
    next_attempt_at: Mapped[datetime | None] = mapped_column(TS)
    delivered_at: Mapped[datetime | None] = mapped_column(TS)


class IncidentRow(Base):
    """An incident: opened by a critical alert, resolved when all its alerts are."""

    __tablename__ = "incidents"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    service_name: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(10))
    started_at: Mapped[datetime] = mapped_column(TS)
    resolved_at: Mapped[datetime | None] = mapped_column(TS)
    acknowledged_at: Mapped[datetime | None] = mapped_column(TS)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    expected: Mapped[bool] = mapped_column(Boolean, server_default="false")
    fingerprints: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default="{}")


class IncidentNoteRow(Base):
    """A note on an incident (an acknowledgement carries one)."""

    __tablename__ = "incident_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(TS)
    author: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text)


class SloRow(Base):
    """A service's SLO (percent targets over a window of days)."""

    __tablename__ = "slos"

    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    availability_target: Mapped[float] = mapped_column(Float)
    latency_threshold_ms: Mapped[float | None] = mapped_column(Float)
    latency_target: Mapped[float | None] = mapped_column(Float)
    window_days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


class SloMinuteRow(Base):
    """Routed requests of a service with an SLO in one minute: all, failed, and slower than its threshold."""

    __tablename__ = "slo_minutes"

    service_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    minute: Mapped[datetime] = mapped_column(TS, primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    slow: Mapped[int] = mapped_column(Integer)
