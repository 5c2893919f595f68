"""Retry budget, backoff with full jitter, and the counters behind the resilience figures."""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass

from engine.clock import Clock

__all__ = ["ResilienceCounters", "ResilienceFigures", "RetryBudget", "backoff_s"]


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base x 2^attempt)] (AWS architecture blog's recommendation)."""
    return rng.uniform(0.0, min(cap_s, base_s * 2**attempt))  # jitter models load, not a figure shown


class RetryBudget:
    """Envoy's retry budget: retries in flight at most `percent` % of requests in flight, never below `minimum`.

    Used from the engine loop only (one thread), so it needs no lock.
    """

    def __init__(self, percent: float = 20.0, minimum: int = 3) -> None:
        self.percent = percent
        self.minimum = minimum
        self.requests_in_flight = 0
        self.retries_in_flight = 0
        self.refused = 0

    def request_started(self) -> None:
        """A routed request began."""
        self.requests_in_flight += 1

    def request_ended(self) -> None:
        """A routed request finished (after all its retries)."""
        self.requests_in_flight -= 1

    def try_retry(self) -> bool:
        """Take a retry slot if the budget allows; pair with retry_ended()."""
        allowed = max(self.minimum, int(self.requests_in_flight * self.percent / 100.0))
        if self.retries_in_flight >= allowed:
            self.refused += 1
            return False
        self.retries_in_flight += 1
        return True

    def retry_ended(self) -> None:
        """A retry attempt finished."""
        self.retries_in_flight -= 1


@dataclass(frozen=True)
class ResilienceFigures:
    """Rates over the window; None when there was nothing to divide by."""

    window_s: float
    requests: int
    retries: int
    retry_success_rate: float | None
    fallbacks: int
    fallback_rate: float | None
    timeouts: int
    timeout_rate: float | None
    budget_refusals: int


_FIELDS = ("requests", "retries", "retry_successes", "fallbacks", "timeouts", "budget_refusals")


class ResilienceCounters:
    """Counts per second in a ring of `window_s` seconds; figures() sums the ring."""

    def __init__(self, clock: Clock, window_s: int = 300) -> None:
        self._clock = clock
        self.window_s = window_s
        self._lock = threading.Lock()
        self._slots: deque[tuple[int, dict[str, int]]] = deque()

    def add(self, name: str, n: int = 1) -> None:
        """Count an event: requests, retries, retry_successes, fallbacks, timeouts, budget_refusals."""
        second = int(self._clock.monotonic())
        slots = self._slots
        if slots and slots[-1][0] == second:  # the common case: the loop thread is the only writer
            slots[-1][1][name] += n  # an unknown name is a KeyError: the slot holds exactly _FIELDS
            return
        if name not in _FIELDS:
            raise ValueError(f"unknown counter {name!r}")
        with self._lock:
            if not self._slots or self._slots[-1][0] != second:
                self._slots.append((second, dict.fromkeys(_FIELDS, 0)))
            self._slots[-1][1][name] += n
            while self._slots and self._slots[0][0] <= second - self.window_s:
                self._slots.popleft()

    def figures(self) -> ResilienceFigures:
        """Totals and rates (%) over the last window."""
        now = int(self._clock.monotonic())
        with self._lock:
            totals = dict.fromkeys(_FIELDS, 0)
            for second, counts in self._slots:
                if second > now - self.window_s:
                    for k, v in counts.items():
                        totals[k] += v

        def pct(a: int, b: int) -> float | None:
            return 100.0 * a / b if b else None

        return ResilienceFigures(
            window_s=float(self.window_s),
            requests=totals["requests"],
            retries=totals["retries"],
            retry_success_rate=pct(totals["retry_successes"], totals["retries"]),
            fallbacks=totals["fallbacks"],
            fallback_rate=pct(totals["fallbacks"], totals["requests"]),
            timeouts=totals["timeouts"],
            timeout_rate=pct(totals["timeouts"], totals["requests"]),
            budget_refusals=totals["budget_refusals"],
        )
