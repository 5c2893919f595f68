"""The alert state machine: every rule evaluated from the live state each ALERT_INTERVAL, one alert per fingerprint.

    (none) --holds--> PENDING --held forSeconds--> FIRING --stops holding--> RESOLVED --holds--> PENDING (new episode)
       \\--holds, forSeconds 0-----------------------^         PENDING --stops holding--> RESOLVED

FIRING sends one notice (`firing`), then one every repeatSeconds (`repeat`); RESOLVED sends `resolved` only when a
firing notice went out (a pending alert that stops holding sends nothing). A matching silence keeps the alert
evaluated and shown but sends nothing; once it ends, a firing alert that was never notified is notified then.
An alert whose rule was deleted, whose service was deleted or that its rule no longer covers resolves; a rule
whose kind changed starts new episodes. A condition that cannot be known (no check yet) changes nothing.

Each alert that changed (state or silencing) or was notified is told to the IncidentSink (which returns the
incident it belongs to), queued for the batch writer, then handed to the Notifier. Evaluation reads nothing from
the database: an outage of it is alerted and notified like anything else, its rows written when it returns.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from contract.alerting import SERVICELESS, AlertKind, AlertState, Severity
from contract.events import AlertEvent, Event
from contract.notifications import DeliveryEvent
from db.alerting_models import AlertRow
from engine.alerting.conditions import CONDITIONS, LiveState, Round, describe
from engine.alerting.model import AlertSnapshot, IncidentSink, Notice, Notifier, Rule, fingerprint
from engine.alerting.silences import SilenceBook
from engine.clock import Clock
from engine.store.logs import event_logger

__all__ = ["AlertEvaluator", "NullIncidents", "NullNotifier", "NullSlo"]

log = event_logger("alerting")
Key = tuple[int, str | None]  # (rule id, service)


class NullNotifier:
    """Sends nothing (until a notifier is wired)."""

    def notify(self, notice: Notice) -> None:
        """Drop the notice."""


class NullIncidents:
    """Opens no incidents."""

    def on_alert(self, alert: AlertSnapshot) -> uuid.UUID | None:
        """No incident."""
        return None


class NullSlo:
    """No service has an SLO."""

    def burn_rate(self, service: str, window_s: float) -> float | None:
        """Unknown."""
        return None


@dataclass(slots=True)
class _Alert:
    """One alert's mutable state (owned by the evaluator, changed under its lock)."""

    rule: Rule
    service: str | None
    fingerprint: str
    state: AlertState
    active_at: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    last_notified_at: datetime | None = None
    value: float | None = None
    holds: bool | None = True
    silenced: bool = False
    expected: bool = False
    incident_id: uuid.UUID | None = None
    notified: bool = False  # a firing notice went out in this episode
    reason: str | None = None  # why it resolved when not by its condition (rule or service gone)


Due = tuple[_Alert, AlertSnapshot, DeliveryEvent | None]


class AlertEvaluator:
    """Evaluates the rules against the live state; holds every alert of the last day in memory."""

    def __init__(self, live: LiveState, submit: Callable[[Event], None], clock: Clock, *,
                 silences: SilenceBook | None = None, notifier: Notifier | None = None,
                 incidents: IncidentSink | None = None, resolved_keep_s: float = 86_400.0,
                 max_resolved: int = 10_000) -> None:
        self._live = live
        self._submit = submit
        self._clock = clock
        self.silences = silences or SilenceBook(clock)
        self._notifier: Notifier = notifier or NullNotifier()
        self._incidents: IncidentSink = incidents or NullIncidents()
        self._keep = timedelta(seconds=resolved_keep_s)
        self._max_resolved = max_resolved
        self._rules: dict[int, Rule] = {}  # replaced whole on change: the loop reads it without a lock
        self._rules_lock = threading.Lock()
        self._lock = threading.Lock()  # the alerts: changed by evaluate (the loop), read by the API
        self._open: dict[Key, _Alert] = {}
        self._alerts: dict[str, _Alert] = {}  # by fingerprint: open ones and resolved ones kept for display
        self._swept_at: datetime | None = None

    # -- rules ------------------------------------------------------------------------------------

    def load_rules(self, rules: Iterable[Rule]) -> None:
        """Replace every rule (at start)."""
        with self._rules_lock:
            self._rules = {r.id: r for r in rules}

    def set_rule(self, rule: Rule) -> None:
        """A rule created or changed; the next evaluation applies it."""
        with self._rules_lock:
            self._rules = {**self._rules, rule.id: rule}

    def drop_rule(self, rule_id: int) -> None:
        """A rule deleted; the next evaluation resolves its alerts."""
        with self._rules_lock:
            self._rules = {k: v for k, v in self._rules.items() if k != rule_id}

    def rules(self) -> list[Rule]:
        """The rules evaluated, by id."""
        return sorted(self._rules.values(), key=lambda r: r.id)

    # -- start ------------------------------------------------------------------------------------

    def restore(self, rows: Iterable[AlertRow]) -> int:
        """Continue the alerts pending or firing at the last stop (call after load_rules); a firing alert already
        notified is not notified again. Returns how many were restored."""
        n = 0
        with self._lock:
            for row in rows:
                rule = self._rules.get(row.rule_id) or Rule(
                    row.rule_id, row.rule_name, AlertKind(row.kind), row.service_name, row.threshold, 0, 0,
                    Severity(row.severity), (), None)  # its rule is gone: the first evaluation resolves it
                state = AlertState(row.state)
                alert = _Alert(rule, row.service_name, row.fingerprint, state, row.active_at,
                               fired_at=row.fired_at, last_notified_at=row.last_notified_at, value=row.value,
                               silenced=row.silenced, incident_id=row.incident_id,
                               notified=state is AlertState.FIRING and row.last_notified_at is not None)
                self._open[(row.rule_id, row.service_name)] = alert
                self._alerts[row.fingerprint] = alert
                n += 1
        return n

    # -- evaluation -------------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        """When the next alert change that time alone brings is due: a pending alert reaching its forSeconds, or
        a firing one its repeat (None when there is none)."""
        dues: list[datetime] = []
        with self._lock:
            for a in self._open.values():
                if a.state is AlertState.PENDING:
                    dues.append(a.active_at + timedelta(seconds=a.rule.for_s))
                elif a.rule.repeat_s is not None and a.last_notified_at is not None:
                    dues.append(a.last_notified_at + timedelta(seconds=a.rule.repeat_s))
        return min(dues, default=None)

    def evaluate(self) -> list[AlertSnapshot]:
        """One round over every rule; returns the snapshots written (changes and notices), in order."""
        now = self._clock.now()
        rnd = Round(self._live)
        rules = self._rules
        due: list[Due] = []
        with self._lock:
            seen: set[Key] = set()
            for rule in rules.values():
                check = CONDITIONS[rule.kind]
                if rule.kind in SERVICELESS:
                    targets: Iterable[str | None] = (None,)
                elif rule.service is not None:
                    targets = (rule.service,) if rule.service in rnd.services else ()
                else:
                    targets = rnd.services
                for service in targets:
                    holds, value = check(rnd, rule, service)
                    key = (rule.id, service)
                    alert = self._open.get(key)
                    if alert is None and not holds:
                        continue  # the common case, kept to a lookup: no alert, nothing begins
                    seen.add(key)
                    self._step(rule, service, holds, value, now, due, alert)
            for key, alert in list(self._open.items()):
                if key not in seen:
                    self._resolve(alert, now, due, self._gone(alert, rules, rnd))
            self._forget_old(now)
        self._live.window.prune()
        return [self._deliver(d) for d in due]

    def _step(self, rule: Rule, service: str | None, holds: bool | None, value: float | None, now: datetime,
              due: list[Due], alert: _Alert | None) -> None:
        """One rule and service: begin, advance or resolve its alert (the open one given, if any)."""
        if alert is not None and alert.rule.kind is not rule.kind:
            self._resolve(alert, now, due, f"rule {rule.name} now watches {rule.kind.value}")
            alert = None
        if alert is None:
            if holds:
                self._begin(rule, service, value, now, due)
            return
        alert.rule = rule
        if holds is False:
            alert.value, alert.holds = value, False
            self._resolve(alert, now, due)
            return
        if holds:
            alert.value, alert.holds = value, True
        self._advance(alert, now, due, holds=bool(holds), new=False)

    def _begin(self, rule: Rule, service: str | None, value: float | None, now: datetime, due: list[Due]) -> None:
        fp = fingerprint(rule.id, service)
        alert = _Alert(rule, service, fp, AlertState.PENDING, now, value=value)
        self._open[(rule.id, service)] = alert
        self._alerts[fp] = alert
        self._advance(alert, now, due, holds=True, new=True)

    def _advance(self, alert: _Alert, now: datetime, due: list[Due], *, holds: bool, new: bool) -> None:
        """A pending or firing alert whose condition holds (or is unknown: holds False): fire when due, notify."""
        changed = self._silence(alert, now) or new
        rule = alert.rule
        if alert.state is AlertState.PENDING and holds and now - alert.active_at >= timedelta(seconds=rule.for_s):
            alert.state, alert.fired_at, changed = AlertState.FIRING, now, True
            log.warning("alert %s firing: %s", rule.name, self._summary(alert),
                        extra={"meta": {"rule": rule.id, "service": alert.service, "value": alert.value}})
        event: DeliveryEvent | None = None
        if alert.state is AlertState.FIRING and not alert.silenced and rule.channels:
            if not alert.notified:
                event, alert.notified = DeliveryEvent.FIRING, True
            elif (rule.repeat_s is not None and alert.last_notified_at is not None
                  and now - alert.last_notified_at >= timedelta(seconds=rule.repeat_s)):
                event = DeliveryEvent.REPEAT
            if event is not None:
                alert.last_notified_at = now
        if changed or event is not None:
            due.append((alert, self._snapshot(alert, now, changed), event))

    def _resolve(self, alert: _Alert, now: datetime, due: list[Due], reason: str | None = None) -> None:
        self._silence(alert, now)
        alert.state, alert.resolved_at, alert.reason = AlertState.RESOLVED, now, reason
        if reason is not None:
            alert.value = None
        del self._open[(alert.rule.id, alert.service)]
        event = None
        if alert.notified and not alert.silenced and alert.rule.channels:
            event, alert.last_notified_at = DeliveryEvent.RESOLVED, now
        if alert.fired_at is not None:
            log.info("alert %s resolved: %s", alert.rule.name, self._summary(alert),
                     extra={"meta": {"rule": alert.rule.id, "service": alert.service}})
        due.append((alert, self._snapshot(alert, now, True), event))

    def _silence(self, alert: _Alert, now: datetime) -> bool:
        """Match the alert against the silences now; True when its silencing changed."""
        m = self.silences.match(alert.rule.id, alert.service, now)
        if (m.silenced, m.expected) == (alert.silenced, alert.expected):
            return False
        alert.silenced, alert.expected = m.silenced, m.expected
        return True

    @staticmethod
    def _gone(alert: _Alert, rules: dict[int, Rule], rnd: Round) -> str:
        rule = rules.get(alert.rule.id)
        if rule is None:
            return f"rule {alert.rule.name} was deleted"
        if alert.service is not None and alert.service not in rnd.services:
            return f"service {alert.service} is no longer registered"
        return f"rule {rule.name} no longer watches {alert.service or 'the monitor'}"

    def _forget_old(self, now: datetime) -> None:
        """Drop resolved alerts older than the keep time, and the oldest past max_resolved (they stay stored);
        looked at once a minute."""
        if self._swept_at is not None and now - self._swept_at < timedelta(minutes=1):
            return
        self._swept_at = now
        resolved = sorted((a for a in self._alerts.values() if a.state is AlertState.RESOLVED),
                          key=lambda a: a.resolved_at or now)
        old = now - self._keep
        excess = len(resolved) - self._max_resolved
        for n, a in enumerate(resolved):
            if n < excess or (a.resolved_at is not None and a.resolved_at < old):
                del self._alerts[a.fingerprint]

    # -- output -----------------------------------------------------------------------------------

    def _summary(self, alert: _Alert) -> str:
        if alert.reason is not None:
            return alert.reason
        return describe(alert.rule, alert.service, alert.value, alert.state is not AlertState.RESOLVED)

    def _snapshot(self, a: _Alert, at: datetime, changed: bool) -> AlertSnapshot:
        r = a.rule
        return AlertSnapshot(a.fingerprint, r.id, r.name, r.kind, r.severity, a.service, a.state, a.silenced,
                             a.expected, a.value, r.threshold, self._summary(a), a.active_at, a.fired_at,
                             a.resolved_at, a.last_notified_at, a.incident_id, at, changed)

    def _deliver(self, item: Due) -> AlertSnapshot:
        """Incident first (its id goes on the snapshot), then the writer, then the notifier. A failing sink or
        notifier is logged and does not keep the alert from being written or the other alerts from going out."""
        alert, snap, event = item
        try:
            incident = self._incidents.on_alert(snap)
        except Exception:
            log.exception("alert %s: the incident sink failed", snap.rule_name)
            incident = None
        if incident is not None and incident != snap.incident_id:
            with self._lock:
                alert.incident_id = incident
            snap = replace(snap, incident_id=incident)
        self._submit(_event(snap))
        if event is not None:
            try:
                self._notifier.notify(Notice(snap, event, alert.rule.channels))
            except Exception:
                log.exception("alert %s: the notifier failed", snap.rule_name)
        return snap

    def alerts(self) -> list[AlertSnapshot]:
        """Every alert held (open, and resolved in the last day), newest first (by activeAt)."""
        now = self._clock.now()
        with self._lock:
            held = [self._snapshot(a, now, False) for a in self._alerts.values()]
        return sorted(held, key=lambda s: (s.active_at, s.fingerprint), reverse=True)


def _event(s: AlertSnapshot) -> AlertEvent:
    return AlertEvent(s.fingerprint, s.rule_id, s.rule_name, s.kind.value, s.severity.value, s.service, s.state.value,
                      s.silenced, s.value, s.threshold, s.summary, s.active_at, s.fired_at, s.resolved_at,
                      s.last_notified_at, s.incident_id, s.at, s.changed)
