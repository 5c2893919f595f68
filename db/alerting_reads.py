"""Reads of the alerting tables for the dashboard: alerts, rules, silences, incidents and deliveries as the
contract's models (the shapes the API answers with), a Session first, never a commit.

Channels are not read here: their config holds secrets, and only the API masks them (GET /api/alert-channels);
the dashboard reads a channel's id, name and type alone (channel_names).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from contract.alerting import AlertKind, AlertOut, AlertRuleOut, AlertState, Severity, SilenceOut, SilenceState
from contract.incidents import IncidentOut, IncidentStatus
from contract.notifications import DeliveryEvent, DeliveryOut, DeliveryStatus
from db.alerting_models import AlertChannelRow, AlertRow, AlertRuleRow, DeliveryRow, SilenceRow
from db.incidents import list_incidents

__all__ = [
    "ChannelName",
    "alert_rules",
    "alerts_now",
    "channel_names",
    "deliveries",
    "delivery_counts",
    "incidents",
    "silence_state",
    "silences",
]

# firing before pending, critical before warning before info: what needs a look first comes first
_STATE_ORDER = case({AlertState.FIRING.value: 0, AlertState.PENDING.value: 1}, value=AlertRow.state, else_=2)
_SEVERITY_ORDER = case({"critical": 0, "warning": 1}, value=AlertRow.severity, else_=2)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _alert(row: AlertRow) -> AlertOut:
    return AlertOut(
        fingerprint=row.fingerprint, ruleId=row.rule_id, ruleName=row.rule_name, kind=AlertKind(row.kind),
        severity=Severity(row.severity), service=row.service_name, state=AlertState(row.state),
        silenced=row.silenced, value=row.value, threshold=row.threshold, summary=row.summary,
        activeAt=row.active_at.isoformat(),
        firedAt=_iso(row.fired_at), resolvedAt=_iso(row.resolved_at), lastNotifiedAt=_iso(row.last_notified_at),
        incidentId=None if row.incident_id is None else str(row.incident_id))


def alerts_now(session: Session, limit: int = 500) -> list[AlertOut]:
    """The alerts not resolved (firing, then pending; critical first, then the longest active)."""
    rows = session.scalars(
        select(AlertRow).where(AlertRow.state != AlertState.RESOLVED.value)
        .order_by(_STATE_ORDER, _SEVERITY_ORDER, AlertRow.active_at, AlertRow.fingerprint).limit(limit))
    return [_alert(r) for r in rows]


def alert_rules(session: Session) -> list[AlertRuleOut]:
    """Every alert rule, by name."""
    rows = session.scalars(select(AlertRuleRow).order_by(AlertRuleRow.name))
    return [AlertRuleOut(
        id=r.id, name=r.name, kind=AlertKind(r.kind), service=r.service_name, threshold=r.threshold,
        windowSeconds=r.window_seconds, forSeconds=r.for_seconds, severity=Severity(r.severity),
        channels=list(r.channels), repeatSeconds=r.repeat_seconds, createdAt=r.created_at.isoformat()) for r in rows]


def silence_state(starts_at: datetime, ends_at: datetime, now: datetime) -> SilenceState:
    """Whether a silence is in effect at `now`: not yet (pending), now (active) or no more (expired)."""
    if ends_at <= now:
        return SilenceState.EXPIRED
    return SilenceState.PENDING if starts_at > now else SilenceState.ACTIVE


def silences(session: Session, now: datetime, expired_for: timedelta = timedelta(days=7),
             limit: int = 200) -> list[SilenceOut]:
    """Silences in effect or to come, then those ended within `expired_for` before `now`; latest end first."""
    rows = session.scalars(
        select(SilenceRow).where(SilenceRow.ends_at > now - expired_for)
        .order_by(SilenceRow.ends_at.desc(), SilenceRow.id.desc()).limit(limit))
    out = [SilenceOut(
        id=r.id, service=r.service_name, rule=r.rule_id, startsAt=r.starts_at.isoformat(),
        endsAt=r.ends_at.isoformat(), comment=r.comment, createdBy=r.created_by, simulationId=r.simulation_id,
        state=silence_state(r.starts_at, r.ends_at, now)) for r in rows]
    order = {SilenceState.ACTIVE: 0, SilenceState.PENDING: 1, SilenceState.EXPIRED: 2}
    return sorted(out, key=lambda s: order[s.state])  # stable: the latest end first within a state


@dataclass(frozen=True)
class ChannelName:
    """A channel as the dashboard may read it from the database: id, name and type, never its config."""

    id: int
    name: str
    type: str

    def label(self) -> str:
        """"ops-slack (slack)"."""
        return f"{self.name} ({self.type})"


def channel_names(session: Session) -> dict[int, ChannelName]:
    """Every channel's id -> its name and type, by name (the config, which holds secrets, is not read)."""
    rows = session.execute(
        select(AlertChannelRow.id, AlertChannelRow.name, AlertChannelRow.type).order_by(AlertChannelRow.name))
    return {r.id: ChannelName(r.id, r.name, r.type) for r in rows}


def incidents(session: Session, status: IncidentStatus | None = None, service: str | None = None,
              limit: int = 100) -> list[IncidentOut]:
    """Incidents, newest first, each with its latest note (db.incidents.list_incidents, as the API reads them)."""
    rows = list_incidents(session, None if status is None else status.value, service, limit)
    return [IncidentOut(
        id=str(r.id), service=r.service_name, status=IncidentStatus(r.status), title=r.title,
        severity=Severity(r.severity), startedAt=r.started_at.isoformat(), resolvedAt=_iso(r.resolved_at),
        acknowledgedAt=_iso(r.acknowledged_at), acknowledgedBy=r.acknowledged_by, expected=r.expected,
        latestNote=note, alerts=list(r.fingerprints)) for r, note in rows]


def deliveries(session: Session, channel: int | None = None, statuses: Sequence[DeliveryStatus] = (),
               limit: int = 100) -> list[DeliveryOut]:
    """Notifications, newest first, of one channel and in some statuses (all when not given)."""
    q = select(DeliveryRow).order_by(DeliveryRow.created_at.desc(), DeliveryRow.id).limit(limit)
    if channel is not None:
        q = q.where(DeliveryRow.channel_id == channel)
    if statuses:
        q = q.where(DeliveryRow.status.in_([s.value for s in statuses]))
    return [DeliveryOut(
        id=str(r.id), channelId=r.channel_id, channelName=r.channel_name, fingerprint=r.fingerprint,
        event=DeliveryEvent(r.event), status=DeliveryStatus(r.status), attempts=r.attempts, lastError=r.last_error,
        createdAt=r.created_at.isoformat(),
        nextAttemptAt=_iso(r.next_attempt_at), deliveredAt=_iso(r.delivered_at), payload=r.payload)
        for r in session.scalars(q)]


def delivery_counts(session: Session, since: datetime) -> dict[DeliveryStatus, int]:
    """Notifications created since `since`, per status (every status present, 0 when none)."""
    rows = session.execute(select(DeliveryRow.status, func.count()).where(DeliveryRow.created_at >= since)
                           .group_by(DeliveryRow.status))
    counts = dict.fromkeys(DeliveryStatus, 0)
    for status, n in rows:
        if status in DeliveryStatus._value2member_map_:
            counts[DeliveryStatus(status)] = int(n)
    return counts
