"""Health checks: classify each GET, damp flapping with fall/rise thresholds, aggregate per service.

History without per-check database work: each result is counted in memory in its minute (one rollup row per
instance per closed minute goes to the writer) and kept in a bounded ring for heartbeat bars; a transition
row is written only when an instance's damped state or a service's aggregate changes, and one to 'unknown'
when observation stops (instance or service removed, checker closed at engine stop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

import httpx

from contract.events import InstanceHealthEvent, InstanceTransitionEvent, ServiceHealthEvent, ServiceTransitionEvent
from contract.states import HealthState
from engine.chaos.faults import FaultLayer, InjectedConnectionError, InjectedStatus
from engine.clock import Clock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.health.history import MinuteRollup, RecentCheck, RecentChecks
from engine.store.logs import event_logger
from engine.store.writer import BatchWriter
from engine.traffic.http import failure_text

__all__ = [
    "CheckResult",
    "HealthChecker",
    "HealthState",
    "InstanceTracker",
    "aggregate",
    "classify",
]

log = event_logger("health")
# a check is judged on its status and latency: this much of the body is read (so a small one keeps the connection
# for the next check), the rest never is
CHECK_BODY_BYTES = 64 * 1024


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


class HealthChecker:
    """Checks every registered instance concurrently, one bounded round per call."""

    def __init__(
        self,
        registry: Registry,
        client: httpx.AsyncClient,
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
        self._client = client
        self._writer = writer
        self._clock = clock
        self._timeout = timeout
        self._degraded_ms = degraded_ms
        self._fall = fall
        self._rise = rise
        self._limit = asyncio.Semaphore(concurrency)
        self._trackers: dict[int, InstanceTracker] = {}
        self._service_state: dict[int, HealthState] = {}
        # what the history holds as each one's current state (absent = unknown); instance -> (service, state)
        self._recorded: dict[int, tuple[int, HealthState]] = {}
        self._service_recorded: dict[int, HealthState] = {}
        self._marked_at: dict[int, datetime] = {}
        self._rollup = MinuteRollup()
        self._recent = RecentChecks(recent)

    def mark_healthy(self, instance_id: int) -> None:
        """An instance its starter just saw answer its health path: healthy from now, not unknown."""
        tracker = self._trackers.setdefault(instance_id, InstanceTracker(self._fall, self._rise))
        if tracker.observe(HealthState.HEALTHY) is not None:
            self._marked_at[instance_id] = self._clock.now()  # the next round records the change at this time

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
        """GET the health path once; never raises, never takes longer than the timeout."""
        url = instance.url.rstrip("/") + service.health_path
        async with self._limit:
            start = self._clock.monotonic()
            try:
                status = await asyncio.wait_for(self._get(service.name, instance.url, url), self._timeout)
            except InjectedStatus as injected:
                latency = (self._clock.monotonic() - start) * 1000.0
                result = classify(injected.status, latency, None, self._degraded_ms)
                return replace(result, error=str(injected)) if result.error else result
            except InjectedConnectionError as exc:
                return classify(None, None, str(exc), self._degraded_ms)
            except (TimeoutError, httpx.HTTPError) as exc:
                return classify(None, None, failure_text(exc, self._timeout), self._degraded_ms)
            latency = (self._clock.monotonic() - start) * 1000.0
            return classify(status, latency, None, self._degraded_ms)

    async def _get(self, service: str, instance_url: str, url: str) -> int:
        if self._faults is not None and self._faults.armed:
            await self._faults.before_send(service, instance_url)
        async with self._client.stream("GET", url) as response:
            read = 0
            async for chunk in response.aiter_bytes():
                read += len(chunk)
                if read >= CHECK_BODY_BYTES:
                    break
            return response.status_code

    async def run_once(self) -> None:
        """One round: check all instances, record results, log transitions, aggregate services."""
        services = self._registry.services()
        pairs = [(s, i) for s in services for i in s.instances]
        results = await asyncio.gather(*(self.check(s, i) for s, i in pairs))
        now = self._clock.now()
        live_ids = {i.id for _, i in pairs}
        for gone in set(self._trackers) - live_ids:
            del self._trackers[gone]
            self._marked_at.pop(gone, None)
        for gone in set(self._recorded) - live_ids:
            self._record_instance(self._recorded[gone][0], gone, HealthState.UNKNOWN, now, None)
            self._recent.forget(gone)
        for (service, instance), result in zip(pairs, results, strict=True):
            tracker = self._trackers.setdefault(instance.id, InstanceTracker(self._fall, self._rise))
            previous = tracker.state
            changed = tracker.observe(result.state)
            if changed is not None:
                self._log_transition(service, instance, previous, changed, result)
            self._record_instance(service.id, instance.id, tracker.state, now, result)
            self._rollup.add(service.id, instance.id, now, result.state, result.latency_ms)
            self._recent.add(service.id, RecentCheck(instance.id, now, result.state, result.latency_ms,
                                                     result.status_code, result.error))
            self._writer.submit(
                InstanceHealthEvent(instance.id, tracker.state.value, now, result.latency_ms, result.error)
            )
        live_services = {s.id for s in services}
        for gone in set(self._service_recorded) - live_services:
            self._record_service(gone, HealthState.UNKNOWN, now)
        for gone in set(self._service_state) - live_services:
            del self._service_state[gone]
        for service in services:
            state = aggregate(self.state_of(i.id) for i in service.instances)
            before = self._service_state.get(service.id)
            if before is not None and before is not state:
                log.info(
                    "service %s is %s (was %s)", service.name, state.value, before.value,
                    extra={"meta": {"service": service.name, "from": before.value, "to": state.value}},
                )
            self._service_state[service.id] = state
            self._record_service(service.id, state, now)
            self._writer.submit(ServiceHealthEvent(service.id, state.value, now))
        for event in self._rollup.closed(now):
            self._writer.submit(event)

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
        self._service_state.clear()

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
