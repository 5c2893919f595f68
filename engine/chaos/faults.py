"""The one fault layer: injected latency and failures on the engine's outbound path (Envoy's fault filter).

Both the router (proxied and load-test traffic) and the health checker call before_send() before
every request to an instance, so a simulated failure is seen the way a real one would be: checks
turn unhealthy, breakers open, metrics and load tests count errors. A latency fault sleeps first
(fixed plus uniform jitter), then a failure fault aborts the call: as a connection error, or as an
HTTP status the router hands back as the instance's answer. Each fault has a probability and an
end time of its own and is ignored once that time passes, whatever the expiry job does.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass

from engine.clock import Clock

__all__ = ["Fault", "FaultLayer", "InjectedConnectionError", "InjectedStatus"]


class InjectedConnectionError(ConnectionRefusedError):
    """A simulated connection failure (an OSError, so callers treat it as the real thing)."""


class InjectedStatus(Exception):
    """A simulated HTTP answer with this status (the router turns it into an upstream response)."""

    def __init__(self, status: int, simulation_id: int) -> None:
        super().__init__(f"injected HTTP {status} (simulation {simulation_id})")
        self.status = status
        self.simulation_id = simulation_id


@dataclass(frozen=True)
class Fault:
    """One active fault. service None = every service; status None = a connection error."""

    simulation_id: int
    service: str | None
    ends_at: float  # monotonic seconds
    probability: float = 1.0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fail: bool = False
    status: int | None = None

    def applies(self, service: str, now: float) -> bool:
        """Whether this fault is for service and not over."""
        return (self.service is None or self.service == service) and now < self.ends_at


class FaultLayer:
    """Active faults, replaced as a whole (copy on write) so the hot path reads without a lock."""

    def __init__(self, clock: Clock, rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - models faults, not secrets
        self._lock = threading.Lock()
        self._faults: tuple[Fault, ...] = ()
        self.fired: dict[int, int] = {}  # simulation id -> requests it acted on (written on the engine loop)

    @property
    def armed(self) -> bool:
        """Any fault registered (the router skips the hook entirely when not)."""
        return bool(self._faults)

    def add(self, fault: Fault) -> None:
        """Activate a fault."""
        with self._lock:
            self._faults = (*self._faults, fault)

    def remove(self, simulation_id: int) -> None:
        """Deactivate the faults of one simulation."""
        with self._lock:
            self._faults = tuple(f for f in self._faults if f.simulation_id != simulation_id)

    def clear(self) -> None:
        """Deactivate every fault."""
        with self._lock:
            self._faults = ()

    def active(self) -> tuple[Fault, ...]:
        """The faults not yet over."""
        now = self._clock.monotonic()
        return tuple(f for f in self._faults if now < f.ends_at)

    def delay_s(self, service: str) -> float:
        """The latency to add to one request to service (0 when no latency fault fires)."""
        now = self._clock.monotonic()
        delay = 0.0
        for f in self._faults:
            if f.latency_ms and f.applies(service, now) and self._rng.random() < f.probability:
                delay += max(0.0, f.latency_ms + self._rng.uniform(-f.jitter_ms, f.jitter_ms))
                self.fired[f.simulation_id] = self.fired.get(f.simulation_id, 0) + 1
        return delay / 1000.0

    def failure(self, service: str) -> Exception | None:
        """The failure to raise for one request to service, if a failure fault fires."""
        now = self._clock.monotonic()
        for f in self._faults:
            if f.fail and f.applies(service, now) and self._rng.random() < f.probability:
                self.fired[f.simulation_id] = self.fired.get(f.simulation_id, 0) + 1
                if f.status is None:
                    return InjectedConnectionError(f"injected connection failure (simulation {f.simulation_id})")
                return InjectedStatus(f.status, f.simulation_id)
        return None

    async def before_send(self, service: str, url: str) -> None:
        """Sleep for a latency fault, then raise for a failure fault (FaultHook)."""
        delay = self.delay_s(service)
        if delay > 0:
            await asyncio.sleep(delay)
        failure = self.failure(service)
        if failure is not None:
            raise failure
