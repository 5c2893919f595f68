"""Scaling: manual scale-up/down of managed services and the autoscaler, each decision a scaling_events row.

Blocking work (starting a process and waiting for it to be healthy, draining one) runs on the
calling API thread or, for the autoscaler, in a worker thread; one action per service at a time.
The autoscaler samples each service's requests in flight every `sample_s` and, every period,
applies the HPA rule (engine.scaling.hpa) to the mean of the period's samples (or to the latest CPU % /
p95 bucket the collector measured); a period during which the instances changed measures nothing,
so each change is judged on a whole period of the fleet it made. While PostgreSQL is down a period
decides nothing (its settings, the instances it would start or stop and its record all live there):
one warning says so, one info line says when it resumes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contract.errors import Conflict, NotFound, ProcessError, Unavailable, ValidationFailed
from contract.events import MetricEvent
from contract.scaling import (
    AutoscalerChange,
    AutoscalerConfig,
    AutoscalerMetric,
    AutoscalerOut,
    AutoscalerSettingsOut,
    ScaleOut,
    ScalingDirection,
    ScalingSource,
)
from db.models import ScalingEvent, Service
from engine.clock import Clock
from engine.fleet.managed import ManagedFleet
from engine.fleet.registry import InstanceSpec, Registry
from engine.scaling.hpa import Decision, Stabilizer, decide
from engine.store.logs import event_logger
from engine.store.outage import UNAVAILABLE, DatabaseOutage

__all__ = ["ScalingManager"]

log = event_logger("scaling")
# AutoscalerSettingsOut's names -> AutoscalerConfig's
_API_FIELDS = {"metric": "metric", "target": "target", "tolerance": "tolerance", "scaleUpWindowS": "up_window_s",
               "scaleDownWindowS": "down_window_s", "maxStep": "max_step"}
_WORDS = {ScalingDirection.UP: "scaled up", ScalingDirection.DOWN: "scaled down", ScalingDirection.NONE: "unchanged"}


class ScalingManager:
    """Scale-up, scale-down, autoscaler settings and periods."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        registry: Registry,
        fleet: ManagedFleet,
        clock: Clock,
        in_flight_of: Callable[[str], int],
        latest_metrics: Callable[[str], MetricEvent | None],
        *,
        sample_s: float = 0.25,
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self.fleet = fleet
        self._clock = clock
        self._in_flight_of = in_flight_of
        self._latest = latest_metrics
        self.sample_s = sample_s
        self._busy: dict[str, threading.Lock] = {}
        self._busy_guard = threading.Lock()
        # (when, requests in flight, the instances the balancer picked from then)
        self._samples: dict[str, deque[tuple[float, int, tuple[InstanceSpec, ...]]]] = {}
        self._stabilizers: dict[str, Stabilizer] = {}
        self._outage = DatabaseOutage("the autoscaler", log, clock)

    # -- manual -------------------------------------------------------------------------------

    def scale_up(self, service_id: int) -> ScaleOut:
        """Start one instance (healthy before it takes traffic); 409 past max or for an external service."""
        name, count, _minimum, maximum = self._managed(service_id)
        if count >= maximum:
            raise Conflict(f"{name} is at its maximum of {maximum} instance(s)",
                           [{"field": "maxInstances", "message": f"{maximum}"}])
        with self._exclusive(name):
            self.fleet.start(service_id)
        return self._done(name, count, count + 1, ScalingDirection.UP, "manual scale-up", ScalingSource.MANUAL)

    def scale_down(self, service_id: int) -> ScaleOut:
        """Drain and stop one instance; 409 at min or for an external service."""
        name, count, minimum, _maximum = self._managed(service_id)
        if count <= minimum:
            raise Conflict(f"{name} is at its minimum of {minimum} instance(s)",
                           [{"field": "minInstances", "message": f"{minimum}"}])
        with self._exclusive(name):
            self.fleet.stop_one(name)
        return self._done(name, count, count - 1, ScalingDirection.DOWN, "manual scale-down",
                          ScalingSource.MANUAL)

    def _managed(self, service_id: int) -> tuple[str, int, int, int]:
        with self._sessions() as session:
            row = session.get(Service, service_id)
            if row is None:
                raise NotFound("service", service_id)
            if not row.launch_command:
                raise Conflict(f"{row.name} is not managed: the engine does not run its instances")
            return row.name, len(self.fleet.running(row.name)), row.min_instances, row.max_instances

    @contextmanager
    def _exclusive(self, name: str) -> Iterator[None]:
        """One scaling action per service at a time (409 for a second one); a failed start is 503."""
        with self._busy_guard:
            lock = self._busy.setdefault(name, threading.Lock())
        if not lock.acquire(blocking=False):
            raise Conflict(f"a scaling action on {name} is in progress")
        try:
            yield
        except ProcessError as exc:
            raise Unavailable(f"scaling {name} failed: {exc}") from exc
        finally:
            lock.release()

    def _done(self, name: str, before: int, after: int, direction: ScalingDirection, reason: str,
              source: ScalingSource, config: AutoscalerConfig | None = None, value: float | None = None) -> ScaleOut:
        """Record one decision (a scaling_events row) and answer it."""
        # logged first: the change happened even if its row cannot be written now
        if direction != ScalingDirection.NONE:
            log.info("%s scaled %s: %d -> %d (%s)", name, direction, before, after, reason,
                     extra={"meta": {"service": name, "from": before, "to": after, "source": source}})
        with self._sessions.begin() as session:
            session.add(ScalingEvent(
                service_name=name, direction=direction, from_count=before, to_count=after, reason=reason,
                timestamp=self._clock.now(), source=source, metric=config.metric if config else None,
                metric_value=value, target=config.target if config else None,
            ))
        return ScaleOut(message=f"{name} {_WORDS[direction]}: {before} -> {after} instance(s)", newInstanceCount=after)

    # -- settings -----------------------------------------------------------------------------

    def configure(self, service_id: int, change: AutoscalerChange) -> AutoscalerOut:
        """Turn the autoscaler on (with settings; unset ones keep their values) or off, and set min/max.

        ValidationFailed names the field.
        """
        fields = change.model_dump(exclude={"enabled", "minInstances", "maxInstances"}, exclude_none=True)
        enabled, minimum, maximum = change.enabled, change.minInstances, change.maxInstances
        with self._sessions.begin() as session:
            row = session.get(Service, service_id)
            if row is None:
                raise NotFound("service", service_id)
            if not row.launch_command:
                raise Conflict(f"{row.name} is not managed: the engine does not run its instances")
            lo = row.min_instances if minimum is None else minimum
            hi = row.max_instances if maximum is None else maximum
            if lo > hi:
                raise ValidationFailed([{"field": "minInstances", "message": "must not exceed maxInstances"}])
            current = dict(row.autoscaler or asdict(AutoscalerConfig()))
            current.update({_API_FIELDS[k]: v for k, v in fields.items()})
            try:
                config = AutoscalerConfig(**current)
            except ValueError as exc:
                raise ValidationFailed([{"field": "autoscaler", "message": str(exc)}]) from None
            row.autoscaler = asdict(config) if enabled else None
            row.min_instances, row.max_instances = lo, hi
            name = row.name
        self._stabilizers.pop(name, None)
        log.info("autoscaler of %s %s", name, "on" if enabled else "off",
                 extra={"meta": {"service": name, "min": lo, "max": hi, **(asdict(config) if enabled else {})}})
        settings = AutoscalerSettingsOut.of(config)
        return AutoscalerOut(enabled=enabled, minInstances=lo, maxInstances=hi, **settings.model_dump())

    # -- autoscaler ---------------------------------------------------------------------------

    def sample(self) -> None:
        """Record each managed service's requests in flight now (on the engine loop, cheap)."""
        now = self._clock.monotonic()
        for spec in self._registry.services():
            if spec.managed:
                samples = self._samples.setdefault(spec.name, deque(maxlen=10_000))
                samples.append((now, self._in_flight_of(spec.name), spec.instances))

    def value(self, name: str, config: AutoscalerConfig, count: int, since: float) -> float | None:
        """The metric per instance over the period (None when unknown).

        In flight: unknown for a period during which the service's instances changed. Samples from
        before a scale-up was done measure the old fleet, swamped while the new processes started,
        and the first ones after it the requests picked before; counted, they would make the next
        period scale up again under load and then back down.
        """
        if config.metric == AutoscalerMetric.INFLIGHT:
            spec = self._registry.by_name(name)
            members = spec.instances if spec else ()
            window = [(n, m) for t, n, m in self._samples.get(name, ()) if t >= since]
            if not window or count < 1 or any(m != members for _n, m in window):
                return None
            return sum(n for n, _m in window) / len(window) / count
        row = self._latest(name)
        if row is None:
            return None
        return row.cpu_percent if config.metric == AutoscalerMetric.CPU else row.latency_p95_ms

    def run_period(self, period_s: float) -> list[ScaleOut]:
        """One autoscaler period over every service it is on for (blocking: call it off the loop).

        The database gone mid-period ends the period: what was done stays done and is in the log.
        """
        try:
            results = self._period(period_s)
        except UNAVAILABLE as exc:
            self._outage.failed(exc)
            return []
        self._outage.succeeded()
        return results

    def _period(self, period_s: float) -> list[ScaleOut]:
        with self._sessions() as session:
            rows = session.scalars(select(Service).where(Service.autoscaler.is_not(None))).all()
            targets = [(r.id, r.name, AutoscalerConfig(**r.autoscaler), r.min_instances, r.max_instances)
                       for r in rows if r.autoscaler and r.launch_command]
        now = self._clock.monotonic()
        results = []
        for service_id, name, config, minimum, maximum in targets:
            count = len(self.fleet.running(name))
            value = self.value(name, config, count, now - period_s)
            history = self._stabilizers.get(name)
            if history is None:  # a fresh start (or new settings): the count now is the first recommendation,
                history = self._stabilizers[name] = Stabilizer()  # so a scale-down waits out its window
                history.add(now, count, max(config.up_window_s, config.down_window_s))
            decision = decide(config, count, value, now, history, minimum, maximum)
            try:
                with self._exclusive(name):
                    if decision.desired > count:
                        self.fleet.start(service_id, decision.desired - count)
                    for _ in range(count - decision.desired):
                        self.fleet.stop_one(name)
            except (Conflict, Unavailable) as exc:  # a manual action is running, or a start failed
                decision = Decision(count, len(self.fleet.running(name)), decision.raw, f"not done: {exc}")
            results.append(self._done(name, count, decision.desired, decision.direction, decision.reason,
                                      ScalingSource.AUTOSCALER, config, value))
        return results
