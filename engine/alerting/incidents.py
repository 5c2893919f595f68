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

from contract.alerting import AlertState, Severity
from contract.events import IncidentEvent
from contract.incidents import IncidentStatus
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
        self._firing: dict[str | None, set[str]] = {}  # alerts firing now outside any incident, by service

    def load(self, session: Session) -> None:
        """Take the open incidents and the firing alerts from the database; an incident whose alerts are all known
        resolved resolves now, a firing alert of a service with an open incident joins it."""
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
        firing: dict[str | None, set[str]] = {}
        joined: set[uuid.UUID] = set()
        for fp, service in queries.firing_alerts(session):
            owner = loaded.get(service)
            if owner is None:
                firing.setdefault(service, set()).add(fp)
            elif fp not in owner.fingerprints:  # it fires while the incident is open: it belongs to it
                owner.fingerprints.append(fp)
                owner.firing.add(fp)
                joined.add(owner.id)
        for incident in loaded.values():
            if incident.id in joined:
                self._writer.submit(incident.event())
        with self._lock:
            self._open = loaded
            self._firing = firing

    def on_alert(self, alert: AlertSnapshot) -> uuid.UUID | None:
        """Told every changed alert; the incident it belongs to (None when none)."""
        with self._lock:
            incident = self._open.get(alert.service)
            if incident is None:
                incident = self._outside(alert)
                if incident is None:
                    return None
                change = "opened"
            elif alert.fingerprint in incident.fingerprints:
                change = self._member_changed(incident, alert)
            elif alert.state is AlertState.FIRING:
                incident.fingerprints.append(alert.fingerprint)
                incident.firing.add(alert.fingerprint)
                change = "joined"
            else:
                return None
            if change == "resolved":
                del self._open[alert.service]
        if change:
            resolved_at = (alert.resolved_at or alert.at) if change == "resolved" else None
            self._writer.submit(incident.event(resolved_at))
            self._say(incident, change, alert)
        return incident.id

    def _outside(self, alert: AlertSnapshot) -> OpenIncident | None:
        """An alert of a service without an open incident: kept as firing or not; a critical one that fires opens
        an incident, which the service's alerts that fire already join."""
        outside = self._firing.setdefault(alert.service, set())
        if alert.state is not AlertState.FIRING:
            outside.discard(alert.fingerprint)
            return None
        if alert.severity is not Severity.CRITICAL:
            outside.add(alert.fingerprint)
            return None
        members = [alert.fingerprint, *sorted(outside - {alert.fingerprint})]
        del self._firing[alert.service]
        incident = OpenIncident(self._new_id(), alert.service, _title(alert), alert.fired_at or alert.at,
                                alert.expected, members, set(members))
        self._open[alert.service] = incident
        return incident

    @staticmethod
    def _member_changed(incident: OpenIncident, alert: AlertSnapshot) -> str:
        """'resolved' when the last firing member resolved, else '' (nothing to write)."""
        if alert.state is AlertState.FIRING:
            incident.firing.add(alert.fingerprint)  # fires again while the incident is still open
            return ""
        if alert.state is AlertState.PENDING:
            return ""  # a member can be pending only after it resolved: it is not firing
        incident.firing.discard(alert.fingerprint)
        return "" if incident.firing else "resolved"

    def _resolve(self, incident: OpenIncident, at: datetime) -> None:
        self._writer.submit(incident.event(at))
        log.info("incident %s of %s resolved at start: its alerts had resolved", incident.id,
                 incident.service or "the monitor", extra={"meta": {"incident": str(incident.id)}})

    @staticmethod
    def _say(incident: OpenIncident, change: str, alert: AlertSnapshot) -> None:
        meta = {"incident": str(incident.id), "service": incident.service, "fingerprint": alert.fingerprint}
        where = incident.service or "the monitor"
        if change == "opened":
            log.warning("incident %s of %s opened: %s", incident.id, where, incident.title,
                        extra={"meta": {**meta, "expected": incident.expected}})
        elif change == "joined":
            log.info("alert %s joined incident %s of %s", alert.rule_name, incident.id, where, extra={"meta": meta})
        else:
            log.info("incident %s of %s resolved", incident.id, where, extra={"meta": meta})

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
