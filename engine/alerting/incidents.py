"""Incidents from alert state changes: a critical alert that fires opens one per service, the service's other
alerts that fire while it is open join it, and it resolves when every alert in it has resolved.

The open incidents live in memory (loaded from the database at start) and every change is written through the
batch writer, so incidents open and resolve while the database is away. `on_alert` runs on the engine loop: it
takes one short lock and queues at most one row, nothing more.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from contract.alerting import AlertState, IncidentStatus, Severity
from contract.events import IncidentEvent
from db import incidents as queries
from engine.alerting.model import AlertSnapshot
from engine.clock import Clock
from engine.store.logs import event_logger
from engine.store.writer import BatchWriter

__all__ = ["IncidentBook", "OpenIncident"]

log = event_logger("incidents")
TITLE_MAX = 300


@dataclass
class OpenIncident:
    """An open incident as the engine keeps it: its alerts, and which of them fire now."""

    id: uuid.UUID
    service: str | None
    title: str
    started_at: datetime
    expected: bool
    fingerprints: list[str]  # every alert that joined, in joining order
    firing: set[str] = field(default_factory=set)

    def event(self, resolved_at: datetime | None = None) -> IncidentEvent:
        """The row this incident is written as (resolved when resolved_at is given)."""
        status = IncidentStatus.OPEN if resolved_at is None else IncidentStatus.RESOLVED
        return IncidentEvent(self.id, self.service, status.value, self.title, Severity.CRITICAL.value,
                             self.started_at, resolved_at, self.expected, tuple(self.fingerprints))


def _title(alert: AlertSnapshot) -> str:
    title = f"{alert.rule_name}: {alert.summary}" if alert.summary else alert.rule_name
    return title[:TITLE_MAX]


class IncidentBook:
    """The IncidentSink of the alert evaluator: opens, joins and resolves incidents (one open per service)."""

    def __init__(self, writer: BatchWriter, clock: Clock, new_id: Callable[[], uuid.UUID] = uuid.uuid4) -> None:
        self._writer = writer
        self._clock = clock
        self._new_id = new_id
        self._lock = threading.Lock()  # on_alert on the loop, the API's reads on its threads
        self._open: dict[str | None, OpenIncident] = {}  # by service (None: the monitor itself)

    def load(self, session: Session) -> None:
        """Take the open incidents from the database; one whose alerts are all known resolved resolves now."""
        rows = queries.open_incidents(session)
        states = queries.alert_states(session, [fp for r in rows for fp in r.fingerprints])
        loaded: dict[str | None, OpenIncident] = {}
        for row in rows:
            incident = OpenIncident(row.id, row.service_name, row.title, row.started_at, row.expected,
                                    list(row.fingerprints))
            # an alert without a row is taken as firing: only a recorded resolution ends an incident here
            incident.firing = {fp for fp in row.fingerprints if fp not in states or states[fp][0] == AlertState.FIRING}
            if not incident.firing:
                ends = [at for _, at in (states[fp] for fp in row.fingerprints if fp in states) if at is not None]
                self._resolve(incident, max(ends, default=self._clock.now()))
                continue
            older = loaded.get(row.service_name)
            if older is not None:  # two open for one service (engines that raced): the newer one carries on
                self._resolve(older, row.started_at)
            loaded[row.service_name] = incident
        with self._lock:
            self._open = loaded

    def on_alert(self, alert: AlertSnapshot) -> uuid.UUID | None:
        """Told every changed alert; the incident it belongs to (None when none)."""
        event: IncidentEvent | None
        with self._lock:
            incident = self._open.get(alert.service)
            if incident is None:
                if alert.state is AlertState.FIRING and alert.severity is Severity.CRITICAL:
                    incident = self._start(alert)
                    self._open[alert.service] = incident
                    event = incident.event()
                else:
                    return None
            elif alert.fingerprint in incident.fingerprints:
                event = self._member_changed(incident, alert)
            elif alert.state is AlertState.FIRING:
                incident.fingerprints.append(alert.fingerprint)
                incident.firing.add(alert.fingerprint)
                event = incident.event()
            else:
                return None
            if event is not None and event.resolved_at is not None:
                del self._open[alert.service]
        if event is not None:
            self._writer.submit(event)
            self._say(incident, event, alert)
        return incident.id

    def _start(self, alert: AlertSnapshot) -> OpenIncident:
        started = alert.fired_at or alert.at
        return OpenIncident(self._new_id(), alert.service, _title(alert), started, alert.expected,
                            [alert.fingerprint], {alert.fingerprint})

    @staticmethod
    def _member_changed(incident: OpenIncident, alert: AlertSnapshot) -> IncidentEvent | None:
        if alert.state is AlertState.FIRING:
            incident.firing.add(alert.fingerprint)  # fires again while the incident is still open
            return None
        if alert.state is AlertState.PENDING:
            return None  # a member can be pending only after it resolved: it is not firing
        incident.firing.discard(alert.fingerprint)
        if incident.firing:
            return None
        return incident.event(alert.resolved_at or alert.at)

    def _resolve(self, incident: OpenIncident, at: datetime) -> None:
        self._writer.submit(incident.event(at))
        log.info("incident %s of %s resolved at start: its alerts had resolved", incident.id,
                 incident.service or "the monitor", extra={"meta": {"incident": str(incident.id)}})

    @staticmethod
    def _say(incident: OpenIncident, event: IncidentEvent, alert: AlertSnapshot) -> None:
        meta = {"incident": str(incident.id), "service": incident.service, "fingerprint": alert.fingerprint}
        where = incident.service or "the monitor"
        if event.resolved_at is not None:
            log.info("incident %s of %s resolved", incident.id, where, extra={"meta": meta})
        elif len(event.fingerprints) == 1:
            log.warning("incident %s of %s opened: %s", incident.id, where, incident.title,
                        extra={"meta": {**meta, "expected": incident.expected}})
        else:
            log.info("alert %s joined incident %s of %s", alert.rule_name, incident.id, where, extra={"meta": meta})

    def open_incidents(self) -> list[OpenIncident]:
        """The incidents open now (copies), oldest first."""
        with self._lock:
            copies = [OpenIncident(i.id, i.service, i.title, i.started_at, i.expected, list(i.fingerprints),
                                   set(i.firing)) for i in self._open.values()]
        return sorted(copies, key=lambda i: i.started_at)

    def is_open(self, incident_id: uuid.UUID) -> bool:
        """Whether the engine holds this incident open (its row may still be on its way to the database)."""
        with self._lock:
            return any(i.id == incident_id for i in self._open.values())
