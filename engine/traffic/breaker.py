"""Circuit breakers: an explicit CLOSED / OPEN / HALF_OPEN state machine per service, clock injected.

CLOSED: calls pass. It opens on `failure_threshold` consecutive failures, or when the failure rate
over the last `window_size` calls reaches `failure_rate_threshold` % once `minimum_calls` were seen.
A call slower than `slow_call_ms` (when set) counts as a failure.
OPEN: calls are refused without reaching the target, for `open_timeout_ms`.
HALF_OPEN: up to `half_open_calls` trial calls are admitted; a failure reopens, that many
successes close. Every transition goes, in order, to the listeners. The states are the contract's
BreakerState (re-exported here).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice, repeat

from contract.traffic import BreakerState
from engine.clock import Clock

__all__ = ["BreakerConfig", "BreakerState", "CircuitBreaker", "Transition"]


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds: 5 consecutive failures or 50 % of the last 20 calls (10 seen) open it for 60 s."""

    failure_threshold: int = 5
    failure_rate_threshold: float = 50.0
    window_size: int = 20
    minimum_calls: int = 10
    slow_call_ms: float | None = None
    open_timeout_ms: float = 60_000.0
    half_open_calls: int = 1

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.window_size < 1 or self.half_open_calls < 1:
            raise ValueError("failure_threshold, window_size and half_open_calls must be at least 1")
        if not 0 < self.failure_rate_threshold <= 100:
            raise ValueError("failure_rate_threshold must be in (0, 100]")
        if not 1 <= self.minimum_calls <= self.window_size:
            raise ValueError("minimum_calls must be between 1 and window_size")
        if self.open_timeout_ms <= 0 or (self.slow_call_ms is not None and self.slow_call_ms <= 0):
            raise ValueError("open_timeout_ms and slow_call_ms must be greater than 0")


@dataclass(frozen=True)
class Transition:
    """One state change of one breaker."""

    service: str
    from_state: BreakerState
    to_state: BreakerState
    at: datetime
    reason: str


Listener = Callable[[Transition], None]


class CircuitBreaker:
    """One service's breaker. Thread-safe: allow() before a call, then exactly one record_*()."""

    def __init__(self, service: str, config: BreakerConfig, clock: Clock, listeners: tuple[Listener, ...] = ()) -> None:
        self.service = service
        self.config = config
        self._clock = clock
        self._listeners = listeners
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._window: deque[bool] = deque(maxlen=config.window_size)  # True = failure
        self._window_failures = 0  # kept in step with _window, so a call costs O(1)
        self._opened_at = 0.0
        self._trials_in_flight = 0
        self._trial_successes = 0
        self.failures = 0
        self.rejected = 0
        self.last_failure: datetime | None = None

    @property
    def state(self) -> BreakerState:
        """The state now (an OPEN breaker whose timeout passed reads HALF_OPEN)."""
        with self._lock:
            pending = self._expire()
        self._notify(pending)
        return self._state

    def allow(self) -> bool:
        """May a call go now? A refused call is counted and must not be recorded."""
        if self._state is BreakerState.CLOSED:  # the common case needs no lock: nothing changes
            return True
        with self._lock:
            pending = self._expire()
            if self._state is BreakerState.CLOSED:  # type: ignore[comparison-overlap] # another thread closed it
                allowed = True
            elif self._state is BreakerState.HALF_OPEN and self._trials_in_flight < self.config.half_open_calls:
                self._trials_in_flight += 1
                allowed = True
            else:
                self.rejected += 1
                allowed = False
        self._notify(pending)
        return allowed

    def quietly_closed(self, duration_ms: float) -> bool:
        """Would recording this success leave everything as it is (CLOSED, not a slow call)?"""
        slow_ms = self.config.slow_call_ms
        return self._state is BreakerState.CLOSED and (slow_ms is None or duration_ms <= slow_ms)

    def record_success(self, duration_ms: float) -> None:
        """The admitted call answered; slow answers count as failures when slow_call_ms is set."""
        slow = self.config.slow_call_ms is not None and duration_ms > self.config.slow_call_ms
        if not slow and self._state is BreakerState.CLOSED:
            with self._lock:  # the common case: a success while CLOSED can change no state
                if self._state is BreakerState.CLOSED:
                    window = self._window
                    if len(window) == window.maxlen and window[0]:
                        self._window_failures -= 1
                    window.append(False)
                    self._consecutive = 0
                    return
        self._record(failed=slow, reason=f"slow call ({duration_ms:.0f} ms)" if slow else "")

    def record_successes(self, durations_ms: list[float]) -> None:
        """record_success() of each duration, in order (one lock for all while CLOSED and none is slow)."""
        slow_ms = self.config.slow_call_ms
        if self._state is BreakerState.CLOSED and (slow_ms is None or max(durations_ms) <= slow_ms):
            with self._lock:
                if self._state is BreakerState.CLOSED:
                    window = self._window
                    n = len(durations_ms)
                    dropped = len(window) + n - (window.maxlen or 0)  # the oldest entries the new ones push out
                    if dropped > 0:
                        self._window_failures -= sum(islice(window, min(dropped, len(window))))
                    window.extend(repeat(False, n))
                    self._consecutive = 0
                    return
        for duration_ms in durations_ms:
            self.record_success(duration_ms)

    def record_failure(self, reason: str = "failure") -> None:
        """The admitted call failed (error status, connection error, timeout)."""
        self._record(failed=True, reason=reason)

    def reset(self, reason: str = "manual reset") -> None:
        """Back to CLOSED with empty counters."""
        with self._lock:
            pending = self._to(BreakerState.CLOSED, reason)
            self.failures = 0
            self.rejected = 0
        self._notify(pending)

    def reconfigure(self, config: BreakerConfig) -> None:
        """New thresholds; the window keeps its most recent calls."""
        with self._lock:
            self.config = config
            self._window = deque(self._window, maxlen=config.window_size)
            self._window_failures = sum(self._window)

    def failure_rate(self) -> float | None:
        """Failure % over the window, None before any call."""
        with self._lock:
            return 100.0 * sum(self._window) / len(self._window) if self._window else None

    # -- the state machine: every transition goes through _to --------------------------------

    def _record(self, failed: bool, reason: str) -> None:
        with self._lock:
            pending = self._expire() if self._state is BreakerState.OPEN else []
            if failed:
                self.failures += 1
                self.last_failure = self._clock.now()
            if self._state is BreakerState.HALF_OPEN:
                self._trials_in_flight = max(0, self._trials_in_flight - 1)
                if failed:
                    pending += self._to(BreakerState.OPEN, f"trial call failed: {reason}")
                else:
                    self._trial_successes += 1
                    if self._trial_successes >= self.config.half_open_calls:
                        pending += self._to(BreakerState.CLOSED, f"{self._trial_successes} trial call(s) succeeded")
            elif self._state is BreakerState.CLOSED:
                if len(self._window) == self._window.maxlen and self._window[0]:
                    self._window_failures -= 1
                self._window.append(failed)
                if failed:
                    self._window_failures += 1
                    self._consecutive += 1
                    pending += self._check_open(reason)  # only a failure can open
                else:
                    self._consecutive = 0
            # a call admitted while CLOSED that ends after the breaker opened changes nothing
        self._notify(pending)

    def _check_open(self, reason: str) -> list[Transition]:
        c = self.config
        if self._consecutive >= c.failure_threshold:
            return self._to(BreakerState.OPEN, f"{self._consecutive} consecutive failures (last: {reason})")
        if len(self._window) >= c.minimum_calls:
            rate = 100.0 * self._window_failures / len(self._window)
            if rate >= c.failure_rate_threshold:
                return self._to(BreakerState.OPEN, f"failure rate {rate:.0f}% over the last {len(self._window)} calls")
        return []

    def _expire(self) -> list[Transition]:
        if self._state is not BreakerState.OPEN:
            return []
        overdue_s = self._clock.monotonic() - self._opened_at - self.config.open_timeout_ms / 1000.0
        if overdue_s < 0:
            return []
        # noticed on the next call or read, but it happened when the timeout ran out
        at = self._clock.now() - timedelta(seconds=overdue_s)
        return self._to(BreakerState.HALF_OPEN, f"open for {self.config.open_timeout_ms:g} ms", at)

    def _to(self, new: BreakerState, reason: str, at: datetime | None = None) -> list[Transition]:
        old = self._state
        self._state = new
        self._consecutive = 0
        self._trials_in_flight = 0
        self._trial_successes = 0
        if new is BreakerState.OPEN:
            self._opened_at = self._clock.monotonic()
        if new is BreakerState.CLOSED:
            self._window.clear()
            self._window_failures = 0
        if old is new:
            return []
        return [Transition(self.service, old, new, at or self._clock.now(), reason)]

    def _notify(self, transitions: list[Transition]) -> None:
        if not transitions:
            return
        for t in transitions:
            for listener in self._listeners:
                listener(t)

