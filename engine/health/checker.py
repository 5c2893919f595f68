"""Health checks: classify each GET, damp flapping with fall/rise thresholds, aggregate per service.

Scheduling: `run(interval)` checks each instance once per interval at its own phase (a hash of its id spread over
the interval, `phase_of`), so checks are spread evenly instead of fired all at once; `PhasePlan` says which are
due when. A check that starts more than `late_s` after its due time is counted late; one that cannot start
within its interval (its previous check still running, or every slot busy) is skipped and counted; `settle()`,
once per interval, aggregates services, closes minutes and reports an interval that was not kept (a counter and
a rate-limited log line). `run_once()` checks everything at once (a round on demand, and tests).

History without per-check database work: each result is counted in memory in its minute (one rollup row per
instance per closed minute goes to the writer) and kept in a bounded ring for heartbeat bars; a transition
row is written only when an instance's damped state or a service's aggregate changes, and one to 'unknown'
when observation stops (instance or service removed, checker closed at engine stop).
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from contract.events import InstanceHealthEvent, InstanceTransitionEvent, ServiceHealthEvent, ServiceTransitionEvent
from contract.states import HealthState
from engine.chaos.faults import FaultLayer, InjectedConnectionError, InjectedStatus
from engine.clock import Clock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.health.history import MinuteRollup, RecentCheck, RecentChecks
from engine.health.probe import Fetch, FetchError
from engine.store.logs import event_logger
from engine.store.writer import BatchWriter

__all__ = [
    "CheckResult",
    "HealthChecker",
    "HealthState",
    "InstanceTracker",
    "PhasePlan",
    "ScheduleCounts",
    "aggregate",
    "classify",
    "phase_of",
]

log = event_logger("health")
# an instance's state row (status, last check, latency, error) is rewritten when its state or error changes, and
# otherwise at most this often: not one database update per check
STATE_ROW_EVERY_S = 30.0
# a "cannot keep the interval" log line at most this often
OVERRUN_LOG_EVERY_S = 60.0
_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: consecutive ids land far apart
_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class CheckResult:
    """One GET of one instance's health path."""

    state: HealthState
    latency_ms: float | None
    status_code: int | None
    error: str | None


def classify(
    status_code: int | None, latency_ms: float | None, error: str | None, degraded_ms: float
) -> CheckResult:
    """Connection error or timeout: unhealthy; non-2xx or slower than degraded_ms: degraded."""
    if error is not None or status_code is None:
        return CheckResult(HealthState.UNHEALTHY, latency_ms, status_code, error or "no response")
    if not 200 <= status_code < 300:
        return CheckResult(HealthState.DEGRADED, latency_ms, status_code, f"HTTP {status_code}")
    if latency_ms is not None and latency_ms > degraded_ms:
        return CheckResult(HealthState.DEGRADED, latency_ms, status_code, f"slow: {latency_ms:.0f} ms")
    return CheckResult(HealthState.HEALTHY, latency_ms, status_code, None)


class InstanceTracker:
    """Fall/rise damping: the state moves only after enough consecutive results on one side of it.

    `fall` results worse than the current state move it to the mildest of them; `rise` results
    better than it move it to the worst of them. A result equal to the state resets the streak.
    The first result ever is taken as is: there is nothing to flap from.
    """

    def __init__(self, fall: int, rise: int) -> None:
        self.fall = fall
        self.rise = rise
        self.state = HealthState.UNKNOWN
        self._streak: list[HealthState] = []

    def observe(self, raw: HealthState) -> HealthState | None:
        """Feed one result; return the new state if it changed, else None."""
        if self.state is HealthState.UNKNOWN:
            self.state = raw
            return raw
        if raw is self.state:
            self._streak.clear()
            return None
        worse = raw.rank > self.state.rank
        if self._streak and (self._streak[0].rank > self.state.rank) != worse:
            self._streak.clear()
        self._streak.append(raw)
        if len(self._streak) < (self.fall if worse else self.rise):
            return None
        ranks = [s.rank for s in self._streak]
        target = self._streak[ranks.index(min(ranks) if worse else max(ranks))]
        self.state = target
        self._streak.clear()
        return target


def aggregate(states: Iterable[HealthState]) -> HealthState:
    """Service status: healthy if all are, unhealthy if none serve, degraded in between."""
    known = [s for s in states if s is not HealthState.UNKNOWN]
    if not known:
        return HealthState.UNKNOWN
    if all(s is HealthState.HEALTHY for s in known):
        return HealthState.HEALTHY
    if all(s is HealthState.UNHEALTHY for s in known):
        return HealthState.UNHEALTHY
    return HealthState.DEGRADED


def phase_of(instance_id: int, interval: float) -> float:
    """Where in each interval the instance is checked, in seconds from the interval's start (a hash of its id:
    stable across restarts, and consecutive ids spread evenly)."""
    return ((instance_id * _GOLDEN) & _MASK) / float(1 << 64) * interval


Pair = tuple[ServiceSpec, InstanceSpec]


@dataclass
class ScheduleCounts:
    """What the phased schedule did since the checker was built (the exporter reads these)."""

    started: int = 0
    late: int = 0  # started more than late_s after their due time
    skipped: int = 0  # due, but not started within their interval
    overrun_intervals: int = 0  # intervals (settle to settle) in which a check was late or skipped
    in_flight: int = 0
    max_delay_s: float = 0.0  # the latest start in the last settled interval, behind its due time


@dataclass
class PhasePlan:
    """Which instances are due when: each at start + k * interval + phase_of(id), k = 0, 1, ... (pure: the caller
    passes the time). Every instance is also checked once at once when first seen (the first fleet at the start,
    and each one added later), so a fresh start or a new instance has a state within a moment; such a check has no
    due time (None) and is never late."""

    interval: float
    start: float
    _order: list[tuple[float, ServiceSpec, InstanceSpec]] = field(default_factory=list)
    _phases: list[float] = field(default_factory=list)
    _cycle: int = 0
    _index: int = 0  # the next slot of _order to hand out, in cycle _cycle
    _known: set[int] = field(default_factory=set)
    _asap: list[Pair] = field(default_factory=list)
    missed: int = 0  # slots passed over because the caller came more than an interval after them

    def set_fleet(self, services: Iterable[ServiceSpec], now: float) -> None:
        """Install the fleet: new instances are due now, the others keep their phase."""
        order = sorted(((phase_of(i.id, self.interval), s, i) for s in services for i in s.instances),
                       key=lambda slot: (slot[0], slot[2].id))
        first = not self._order and not self._known
        ids = {slot[2].id for slot in order}
        self._asap.extend((s, i) for _, s, i in order if i.id not in self._known)
        self._known = ids
        self._order = order
        self._phases = [slot[0] for slot in order]
        # continue from where the cursor stands: the first slot after the current position in this cycle
        offset = now - self.start - self._cycle * self.interval
        self._index = bisect.bisect_right(self._phases, min(max(offset, -1.0), self.interval)) if not first else 0
        if self._index >= len(order):
            self._index = 0
            self._cycle += 1

    def due(self, now: float) -> list[tuple[ServiceSpec, InstanceSpec, float | None]]:
        """Every (service, instance, due time) due at or before now and not handed out yet, oldest first (the
        first checks of instances first seen: due time None); a slot more than an interval old is passed over
        (counted in `missed`): the same instance is due again since."""
        out: list[tuple[ServiceSpec, InstanceSpec, float | None]] = [(s, i, None) for s, i in self._asap]
        self._asap.clear()
        order = self._order
        n = len(order)
        if n == 0:
            return out
        behind = now - self.interval - (self.start + self._cycle * self.interval)
        if behind > self.interval:  # far behind (a stalled loop): whole cycles passed, each slot missed once each
            cycles = int(behind // self.interval)
            self.missed += cycles * n
            self._cycle += cycles
        while True:
            at = self.start + self._cycle * self.interval + self._phases[self._index]
            if at > now:
                break
            if now - at < self.interval:
                out.append((order[self._index][1], order[self._index][2], at))
            else:
                self.missed += 1
            self._index += 1
            if self._index == n:
                self._index = 0
                self._cycle += 1
        return out

    def next_due(self) -> float | None:
        """When the next slot is due (None without instances; the time of the next call when some are due now)."""
        if self._asap:
            return self.start
        if not self._order:
            return None
        return self.start + self._cycle * self.interval + self._phases[self._index]


class HealthChecker:
    """Checks every registered instance: each at its phase once per interval (`run`), or all at once (`run_once`)."""

    def __init__(
        self,
        registry: Registry,
        fetch: Fetch,
        writer: BatchWriter,
        clock: Clock,
        *,
        timeout: float,
        degraded_ms: float,
        fall: int,
        rise: int,
        concurrency: int,
        faults: FaultLayer | None = None,
        recent: int = 120,
    ) -> None:
        self._registry = registry
        self._faults = faults
        self._fetch = fetch
        self._writer = writer
        self._clock = clock
        self._timeout = timeout
        self._degraded_ms = degraded_ms
        self._fall = fall
        self._rise = rise
        self._concurrency = concurrency
        self._limit = asyncio.Semaphore(concurrency)
        self._trackers: dict[int, InstanceTracker] = {}
        self.generation = 0  # changes whenever an instance's state_of() may have (the router keeps candidates by it)
        self._service_state: dict[int, HealthState] = {}
        # what the history holds as each one's current state (absent = unknown); instance -> (service, state)
        self._recorded: dict[int, tuple[int, HealthState]] = {}
        self._service_recorded: dict[int, HealthState] = {}
        self._marked_at: dict[int, datetime] = {}
        self._rollup = MinuteRollup()
        self._recent = RecentChecks(recent)
        self._state_rows: dict[int, tuple[float, HealthState, str | None]] = {}  # last state row: (at, state, error)
        self._urls: dict[tuple[str, str], str] = {}
        self._seen_fleet: tuple[ServiceSpec, ...] | None = None  # the registry snapshot gone instances were sought in
        # held while gone instances are sought and while a starter marks one healthy (it runs on an API thread)
        self._marks = threading.Lock()
        self.counts = ScheduleCounts()
        self._settled = ScheduleCounts()
        self._logged_overrun_at: float | None = None
        self._interval: float | None = None
        self._in_flight: set[int] = set()
        self._first_checks: set[int] = set()  # in flight, and a first check (no due time)
        self._waiting: deque[tuple[ServiceSpec, InstanceSpec, float | None]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()

    def mark_healthy(self, instance_id: int) -> None:
        """An instance its starter just saw answer its health path: healthy from now, not unknown."""
        with self._marks:
            tracker = self._trackers.setdefault(instance_id, InstanceTracker(self._fall, self._rise))
            if tracker.observe(HealthState.HEALTHY) is not None:
                self.generation += 1
                self._marked_at[instance_id] = self._clock.now()  # the next result records the change at this time

    def recent(self, service_id: int, limit: int) -> list[RecentCheck]:
        """The service's latest check results (all instances), newest first; at most `recent` per instance."""
        return self._recent.latest(service_id, limit)

    @property
    def open_minutes(self) -> int:
        """(instance, minute) rollup rows held in memory, not yet written."""
        return self._rollup.pending

    def state_of(self, instance_id: int) -> HealthState:
        """The damped state of an instance (unknown before its first check)."""
        tracker = self._trackers.get(instance_id)
        return tracker.state if tracker else HealthState.UNKNOWN

    async def check(self, service: ServiceSpec, instance: InstanceSpec) -> CheckResult:
        """GET the health path once (at most `concurrency` at a time); never raises, never takes longer than the
        timeout."""
        async with self._limit:
            return await self._check(service, instance)

    async def _check(self, service: ServiceSpec, instance: InstanceSpec) -> CheckResult:
        key = (instance.url, service.health_path)
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) >= 65536:
                self._urls.clear()
            url = self._urls[key] = instance.url.rstrip("/") + service.health_path
        start = self._clock.monotonic()
        try:
            if self._faults is not None and self._faults.armed:
                async with asyncio.timeout(self._timeout):
                    await self._faults.before_send(service.name, instance.url)
                status = await self._fetch(url, max(self._timeout - (self._clock.monotonic() - start), 0.001))
            else:
                status = await self._fetch(url, self._timeout)
        except InjectedStatus as injected:
            latency = (self._clock.monotonic() - start) * 1000.0
            result = classify(injected.status, latency, None, self._degraded_ms)
            return replace(result, error=str(injected)) if result.error else result
        except InjectedConnectionError as exc:
            return classify(None, None, str(exc), self._degraded_ms)
        except TimeoutError:
            return classify(None, None, f"timeout after {self._timeout:g} s", self._degraded_ms)
        except FetchError as exc:
            return classify(None, None, str(exc), self._degraded_ms)
        latency = (self._clock.monotonic() - start) * 1000.0
        return classify(status, latency, None, self._degraded_ms)

    # -- all at once --------------------------------------------------------------------------------

    async def run_once(self) -> None:
        """One round: check all instances at once, record results, log transitions, aggregate services."""
        services = self._registry.services()
        pairs = [(s, i) for s in services for i in s.instances]
        results = await asyncio.gather(*(self.check(s, i) for s, i in pairs))
        now = self._clock.now()
        self._forget_gone(now)
        for (service, instance), result in zip(pairs, results, strict=True):
            self._apply(service, instance, result, now, aggregate_now=False)
        self._settle_services(services, now)

    # -- each at its phase --------------------------------------------------------------------------

    async def run(self, interval: float, tick: float = 0.01) -> None:
        """Check each instance once per interval at its phase, until cancelled (the engine loop's time: the
        schedule is real time whatever clock stamps the results)."""
        loop = asyncio.get_running_loop()
        self._interval = interval
        plan = PhasePlan(interval, loop.time())
        fleet: tuple[ServiceSpec, ...] | None = None
        late_s = min(0.25, interval / 4)
        try:
            while True:
                services = self._registry.services()
                now = loop.time()
                if services is not fleet:
                    plan.set_fleet(services, now)
                    fleet = services
                self.counts.skipped += plan.missed
                plan.missed = 0
                for service, instance, due_at in plan.due(now):
                    self._dispatch(service, instance, due_at, now, late_s)
                nxt = plan.next_due()
                wait = 1.0 if nxt is None else min(max(nxt - loop.time(), tick), 1.0)
                await asyncio.sleep(wait)
        finally:
            for task in list(self._tasks):
                task.cancel()

    def _dispatch(self, service: ServiceSpec, instance: InstanceSpec, due_at: float | None, now: float,
                  late_s: float) -> None:
        if instance.id in self._in_flight:
            if instance.id not in self._first_checks:  # a first check still running stands for this one
                self.counts.skipped += 1  # its previous check still runs (a timeout longer than the interval)
            return
        if len(self._in_flight) >= self._concurrency:
            self._waiting.append((service, instance, due_at))
            return
        self._start(service, instance, due_at, now, late_s)

    def _start(self, service: ServiceSpec, instance: InstanceSpec, due_at: float | None, now: float,
               late_s: float) -> None:
        if due_at is not None:
            delay = now - due_at
            if delay > late_s:
                self.counts.late += 1
            self.counts.max_delay_s = max(self.counts.max_delay_s, delay)
        else:
            self._first_checks.add(instance.id)
        self.counts.started += 1
        self._in_flight.add(instance.id)
        self.counts.in_flight = len(self._in_flight)
        task = asyncio.get_running_loop().create_task(self._checked(service, instance, late_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _checked(self, service: ServiceSpec, instance: InstanceSpec, late_s: float) -> None:
        try:
            result = await self._check(service, instance)
            self._apply(service, instance, result, self._clock.now(), aggregate_now=True)
        finally:
            self._in_flight.discard(instance.id)
            self._first_checks.discard(instance.id)
            self.counts.in_flight = len(self._in_flight)
            self._start_waiting(late_s)

    def _start_waiting(self, late_s: float) -> None:
        interval = self._interval or 0.0
        now = asyncio.get_running_loop().time()
        while self._waiting and len(self._in_flight) < self._concurrency:
            service, instance, due_at = self._waiting.popleft()
            if (due_at is not None and now - due_at >= interval) or instance.id in self._in_flight:
                self.counts.skipped += 1  # its next due time has come: that one is its check
                continue
            self._start(service, instance, due_at, now, late_s)

    def settle(self) -> None:
        """Once per interval: instances and services gone become unknown, services are aggregated, closed minutes
        written, and an interval in which checks were late or skipped is counted and logged (at most once a
        minute)."""
        services = self._registry.services()
        now = self._clock.now()
        self._forget_gone(now)
        self._settle_services(services, now)
        late = self.counts.late - self._settled.late
        skipped = self.counts.skipped - self._settled.skipped
        started = self.counts.started - self._settled.started
        if late or skipped:
            self.counts.overrun_intervals += 1
            mono = self._clock.monotonic()
            if self._logged_overrun_at is None or mono - self._logged_overrun_at >= OVERRUN_LOG_EVERY_S:
                self._logged_overrun_at = mono
                log.warning(
                    "health checks cannot keep the %g s interval: %d late and %d skipped (%d started) since the last "
                    "interval; %d interval(s) not kept so far", self._interval or 0.0, late, skipped, started,
                    self.counts.overrun_intervals,
                    extra={"meta": {"late": late, "skipped": skipped, "started": started,
                                    "overrunIntervals": self.counts.overrun_intervals}},
                )
        self._settled = replace(self.counts)
        self.counts.max_delay_s = 0.0

    # -- recording --------------------------------------------------------------------------------

    def _forget_gone(self, now: datetime) -> None:
        # the registry's snapshot of now, not the caller's: an instance registered since (and marked healthy by
        # its starter, which reloads the registry first) is not gone
        with self._marks:
            services = self._registry.services()
            if services is self._seen_fleet:
                return
            self._seen_fleet = services
            live_ids = {i.id for s in services for i in s.instances}
            for gone in set(self._trackers) - live_ids:
                del self._trackers[gone]
                self.generation += 1
                self._marked_at.pop(gone, None)
                self._state_rows.pop(gone, None)
        for gone in set(self._recorded) - live_ids:
            self._record_instance(self._recorded[gone][0], gone, HealthState.UNKNOWN, now, None)
            self._recent.forget(gone)
        live_services = {s.id for s in services}
        for sid in set(self._service_recorded) - live_services:
            self._record_service(sid, HealthState.UNKNOWN, now)
        for sid in set(self._service_state) - live_services:
            del self._service_state[sid]

    def _apply(self, service: ServiceSpec, instance: InstanceSpec, result: CheckResult, now: datetime, *,
               aggregate_now: bool) -> None:
        tracker = self._trackers.get(instance.id)
        if tracker is None:
            tracker = self._trackers[instance.id] = InstanceTracker(self._fall, self._rise)
        previous = tracker.state
        changed = tracker.observe(result.state)
        if changed is not None:
            self.generation += 1
            self._log_transition(service, instance, previous, changed, result)
        self._record_instance(service.id, instance.id, tracker.state, now, result)
        self._rollup.add(service.id, instance.id, now, result.state, result.latency_ms)
        self._recent.record(service.id, instance.id, now, result.state, result.latency_ms, result.status_code,
                            result.error)
        mono = self._clock.monotonic()
        last = self._state_rows.get(instance.id)
        if (last is None or last[1] is not tracker.state or last[2] != result.error
                or mono - last[0] >= STATE_ROW_EVERY_S):
            self._state_rows[instance.id] = (mono, tracker.state, result.error)
            self._writer.submit(
                InstanceHealthEvent(instance.id, tracker.state.value, now, result.latency_ms, result.error)
            )
        if aggregate_now and changed is not None:
            self._aggregate(service, now, row=False)

    def _settle_services(self, services: tuple[ServiceSpec, ...], now: datetime) -> None:
        for service in services:
            self._aggregate(service, now, row=True)
        for event in self._rollup.closed(now):
            self._writer.submit(event)

    def _aggregate(self, service: ServiceSpec, now: datetime, *, row: bool) -> None:
        state = aggregate(self.state_of(i.id) for i in service.instances)
        before = self._service_state.get(service.id)
        if before is not None and before is not state:
            log.info(
                "service %s is %s (was %s)", service.name, state.value, before.value,
                extra={"meta": {"service": service.name, "from": before.value, "to": state.value}},
            )
        self._service_state[service.id] = state
        self._record_service(service.id, state, now)
        if row or before is not state:
            self._writer.submit(ServiceHealthEvent(service.id, state.value, now))

    def close(self) -> None:
        """Observation stops (engine stop, after the last round): every known state becomes unknown now and the
        open minute's counts are written; the next round starts from unknown."""
        now = self._clock.now()
        for instance_id, (service_id, _) in list(self._recorded.items()):
            self._record_instance(service_id, instance_id, HealthState.UNKNOWN, now, None)
        for service_id in list(self._service_recorded):
            self._record_service(service_id, HealthState.UNKNOWN, now)
        for event in self._rollup.drain():
            self._writer.submit(event)
        self._trackers.clear()
        self.generation += 1
        self._service_state.clear()
        self._state_rows.clear()
        self._seen_fleet = None

    def _record_instance(self, service_id: int, instance_id: int, state: HealthState, at: datetime,
                         result: CheckResult | None) -> None:
        before = self._recorded[instance_id][1] if instance_id in self._recorded else HealthState.UNKNOWN
        if state is before:
            return
        marked = self._marked_at.pop(instance_id, None)
        cause = result if marked is None and state is not HealthState.UNKNOWN else None
        self._writer.submit(InstanceTransitionEvent(
            service_id, instance_id, before.value, state.value, marked or at,
            cause.latency_ms if cause else None, cause.status_code if cause else None, cause.error if cause else None,
        ))
        if state is HealthState.UNKNOWN:
            del self._recorded[instance_id]
        else:
            self._recorded[instance_id] = (service_id, state)

    def _record_service(self, service_id: int, state: HealthState, at: datetime) -> None:
        before = self._service_recorded.get(service_id, HealthState.UNKNOWN)
        if state is before:
            return
        self._writer.submit(ServiceTransitionEvent(service_id, before.value, state.value, at))
        if state is HealthState.UNKNOWN:
            del self._service_recorded[service_id]
        else:
            self._service_recorded[service_id] = state

    @staticmethod
    def _log_transition(
        service: ServiceSpec,
        instance: InstanceSpec,
        previous: HealthState,
        new: HealthState,
        result: CheckResult,
    ) -> None:
        meta = {
            "service": service.name,
            "instance": instance.url,
            "instanceId": instance.id,
            "from": previous.value,
            "to": new.value,
            "latencyMs": result.latency_ms,
            "statusCode": result.status_code,
            "error": result.error,
        }
        message = f"instance {instance.url} of {service.name} is {new.value} (was {previous.value})"
        if result.error:
            message += f": {result.error}"
        if new is HealthState.UNHEALTHY:
            log.error(message, extra={"meta": meta})
        elif new is HealthState.DEGRADED:
            log.warning(message, extra={"meta": meta})
        else:
            log.info(message, extra={"meta": meta})
