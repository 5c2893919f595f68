"""The values the parts of alerting pass each other: a rule, an alert's state, a notice to send, and the
interfaces between the evaluator, the notifier, incidents and SLOs."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from contract.alerting import AlertKind, AlertRuleIn, AlertState, Severity
from contract.notifications import DeliveryEvent
from db.alerting_models import AlertRuleRow

__all__ = [
    "AlertSnapshot",
    "IncidentSink",
    "Notice",
    "Notifier",
    "Rule",
    "SloSource",
    "fingerprint",
]


def fingerprint(rule_id: int, service: str | None) -> str:
    """An alert's identity: the same rule and service always give the same fingerprint (hex, 16 chars)."""
    return hashlib.sha256(f"{rule_id}\x00{service or ''}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Rule:
    """An alert rule as the evaluator uses it."""

    id: int
    name: str
    kind: AlertKind
    service: str | None  # None: every service (or, for monitor-database, the monitor itself)
    threshold: float | None
    window_s: int
    for_s: int
    severity: Severity
    channels: tuple[int, ...]
    repeat_s: int | None

    @classmethod
    def of_row(cls, row: AlertRuleRow) -> Rule:
        """The rule a stored row describes."""
        return cls(row.id, row.name, AlertKind(row.kind), row.service_name, row.threshold, row.window_seconds,
                   row.for_seconds, Severity(row.severity), tuple(row.channels), row.repeat_seconds)

    @classmethod
    def of_request(cls, rule_id: int, body: AlertRuleIn) -> Rule:
        """The rule a request describes, under the id it was stored with."""
        return cls(rule_id, body.name, body.kind, body.service, body.threshold, body.windowSeconds,
                   body.forSeconds, body.severity, tuple(body.channels), body.repeatSeconds)


@dataclass(frozen=True)
class AlertSnapshot:
    """An alert's state at one moment: what is written (an `alerts` row, an `alert_events` row on a change),
    shown and notified."""

    fingerprint: str
    rule_id: int
    rule_name: str
    kind: AlertKind
    severity: Severity
    service: str | None
    state: AlertState
    silenced: bool
    expected: bool  # silenced by the silence of a failure simulation started with silence: true
    value: float | None
    threshold: float | None
    summary: str
    active_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    last_notified_at: datetime | None
    incident_id: uuid.UUID | None
    at: datetime  # when this snapshot was taken
    changed: bool  # the state or silencing changed at `at` (an alert_events row is due)


@dataclass(frozen=True)
class Notice:
    """One notification due: an alert fired, fires still (repeat) or resolved; sent to each of the channels."""

    alert: AlertSnapshot
    event: DeliveryEvent
    channels: tuple[int, ...]


class Notifier(Protocol):
    """Sends notices; never blocks the caller, never lets one channel delay another."""

    def notify(self, notice: Notice) -> None:
        """Queue the notice for each of its channels."""


class IncidentSink(Protocol):
    """Opens and resolves incidents from alert state changes."""

    def on_alert(self, alert: AlertSnapshot) -> uuid.UUID | None:
        """Told every changed alert (before it is written or notified); the incident it belongs to, if any."""


class SloSource(Protocol):
    """Burn rates of services' SLOs from the engine's live counters."""

    def burn_rate(self, service: str, window_s: float) -> float | None:
        """How fast the service's error budget burned over the last window_s (1 = exactly on budget); None when
        the service has no SLO or no traffic was routed in the window."""
