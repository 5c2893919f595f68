"""A rig for the alert evaluator: live state a test sets directly (registry, health, breakers, routed traffic,
the writer's state, SLO burn rates) on a fake clock, and the writer's, incidents' and notifier's sides recorded."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy.orm import sessionmaker

from contract.alerting import AlertKind, AlertState, Severity
from contract.events import AlertEvent, Event
from contract.states import HealthState
from engine.alerting.conditions import LiveState
from engine.alerting.evaluator import AlertEvaluator
from engine.alerting.model import AlertSnapshot, Notice, Rule
from engine.alerting.silences import Silence, SilenceBook
from engine.clock import FakeClock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.store.writer import BatchWriter
from engine.traffic.breakers import BreakerBook
from engine.traffic.recorder import TrafficRecorder
from engine.traffic.window import RollingWindow

H, D, U, UNK = HealthState.HEALTHY, HealthState.DEGRADED, HealthState.UNHEALTHY, HealthState.UNKNOWN


def rule(rule_id: int = 1, kind: AlertKind = AlertKind.SERVICE_DOWN, service: str | None = "orders", *,
         threshold: float | None = None, window_s: int = 300, for_s: int = 0, channels: tuple[int, ...] = (1,),
         repeat_s: int | None = None, severity: Severity = Severity.WARNING, name: str | None = None) -> Rule:
    """A rule as the evaluator takes it."""
    return Rule(rule_id, name or f"rule-{rule_id}", kind, service, threshold, window_s, for_s, severity, channels,
                repeat_s)


def service(service_id: int, name: str, instances: int) -> ServiceSpec:
    """A service with instances numbered service_id * 100 + 1, + 2, ..."""
    return ServiceSpec(service_id, name, "/health", None, 1, False,
                       tuple(InstanceSpec(service_id * 100 + n, service_id, f"http://127.0.0.1:{9000 + n}")
                             for n in range(1, instances + 1)))


class Incidents:
    """An incident sink that opens one incident when a critical alert's episode fires and remembers every call."""

    def __init__(self) -> None:
        self.seen: list[AlertSnapshot] = []
        self.ids: dict[tuple[str, object], uuid.UUID] = {}

    def on_alert(self, alert: AlertSnapshot) -> uuid.UUID | None:
        self.seen.append(alert)
        key = (alert.fingerprint, alert.active_at)
        if alert.severity is Severity.CRITICAL and alert.state is AlertState.FIRING:
            return self.ids.setdefault(key, uuid.uuid4())
        return self.ids.get(key)


class Notices:
    """A notifier that keeps what it was handed."""

    def __init__(self) -> None:
        self.sent: list[Notice] = []

    def notify(self, notice: Notice) -> None:
        self.sent.append(notice)

    def events(self) -> list[tuple[str, str]]:
        """(event, fingerprint) of every notice, in order."""
        return [(n.event.value, n.alert.fingerprint) for n in self.sent]


@dataclass
class Rig:
    """The evaluator over live state the test sets."""

    clock: FakeClock = field(default_factory=FakeClock)
    health: dict[int, HealthState] = field(default_factory=dict)
    burn: dict[tuple[str, float], float] = field(default_factory=dict)
    db_ok: bool = True
    db_pending: int = 0
    written: list[Event] = field(default_factory=list)
    notices: Notices = field(default_factory=Notices)
    incidents: Incidents = field(default_factory=Incidents)
    writer: BatchWriter | None = None  # a real writer instead of the list (the database tests)

    def __post_init__(self) -> None:
        self.registry = Registry()
        self.registry.replace((service(1, "orders", 3), service(2, "payments", 2)))
        self.breakers = BreakerBook(self.clock, BatchWriter(sessionmaker(), self.clock))
        self.window = RollingWindow(self.clock)
        self.recorder = TrafficRecorder(listeners=(self.window.add,))
        self.silences = SilenceBook(self.clock)
        database = self._writer_state if self.writer is not None else lambda: (self.db_ok, self.db_pending)
        live = LiveState(self.registry.services, lambda i: self.health.get(i, UNK), self.breakers.state_of,
                         self.window, database, self)
        submit = self.writer.submit if self.writer is not None else self.written.append
        self.evaluator = AlertEvaluator(live, submit, self.clock, silences=self.silences, notifier=self.notices,
                                        incidents=self.incidents)

    def _writer_state(self) -> tuple[bool, int]:
        assert self.writer is not None
        status = self.writer.status()
        return status.database_ok, status.pending

    def burn_rate(self, service: str, window_s: float) -> float | None:
        """The SloSource side: what the test set, None otherwise."""
        return self.burn.get((service, window_s))

    def set_health(self, name: str, *states: HealthState) -> None:
        """The damped state of each instance of a service, in order."""
        spec = self.registry.by_name(name)
        assert spec is not None
        for inst, state in zip(spec.instances, states, strict=True):
            self.health[inst.id] = state

    def silence(self, silence_id: int, service: str | None, rule_id: int | None, seconds: float,
                simulation_id: int | None = None) -> None:
        """A silence from now for that long (added to those held)."""
        from datetime import timedelta

        now = self.clock.now()
        held = self.silences.all()
        self.silences.replace([*held, Silence(silence_id, service, rule_id, now, now + timedelta(seconds=seconds),
                                              simulation_id)])

    def run(self, advance: float = 0.0) -> list[AlertSnapshot]:
        """Advance the clock, then one evaluation; the snapshots written by it."""
        self.clock.advance(advance)
        return self.evaluator.evaluate()

    def alert_events(self) -> list[AlertEvent]:
        """What went to the writer."""
        return [e for e in self.written if isinstance(e, AlertEvent)]


def states(snapshots: list[AlertSnapshot]) -> list[tuple[str | None, str]]:
    """(service, state) of each snapshot, in order."""
    return [(s.service, s.state.value) for s in snapshots]
