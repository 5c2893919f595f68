"""A rolling window of routed traffic per service: requests, errors and latency over the last N seconds.

Every routed request lands in its service's slot for the current second (monotonic clock): a request count, an
error count and a sparse latency histogram. Slots live in a ring of `max_window_s + 2` per service, so a query
reaches back at most `max_window_s` seconds; a second with no traffic costs nothing but its ring entry.

A query over W seconds covers the current (partial) second and the W - 1 completed seconds before it: between
W - 1 and W seconds of time. Each (service, W) asked for keeps a running sum of its completed seconds, moved on
by the seconds that entered and left the window since the last query, so a query costs the seconds elapsed since
the previous one (and the histogram's occupied buckets for a percentile), not W.

Latency buckets map a value x (ms) to i = ceil(log_gamma(x)) with gamma = (1 + a) / (1 - a), a = 0.02 (the
DDSketch mapping); a percentile is the nearest-rank bucket's value 2 gamma^i / (gamma + 1), within 2 % of the
true nearest-rank value (relative error). Values under 1 µs are counted as 1 µs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.clock import Clock
from engine.stats import nearest_rank

__all__ = ["MAX_WINDOW_S", "RELATIVE_ERROR", "RollingWindow", "WindowCounts"]

MAX_WINDOW_S = 3600
RELATIVE_ERROR = 0.02
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)
_MIN_MS = 0.001


def bucket_of(latency_ms: float) -> int:
    """The histogram bucket a latency falls in."""
    return math.ceil(math.log(max(latency_ms, _MIN_MS)) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    """The value a bucket reports: within RELATIVE_ERROR of any value in it."""
    return 2.0 * _GAMMA**index / (_GAMMA + 1.0)


@dataclass(frozen=True)
class WindowCounts:
    """Routed requests and failed ones over a window."""

    requests: int
    errors: int


class _Slot:
    __slots__ = ("errors", "hist", "requests", "second")

    def __init__(self, second: int) -> None:
        self.second = second
        self.requests = 0
        self.errors = 0
        self.hist: dict[int, int] = {}


class _Sum:
    """The completed seconds (lo, hi] of one service's window of one length."""

    __slots__ = ("errors", "hi", "hist", "lo", "requests", "used")

    def __init__(self, lo: int, hi: int) -> None:
        self.lo = lo
        self.hi = hi
        self.requests = 0
        self.errors = 0
        self.hist: dict[int, int] = {}
        self.used = hi

    def add(self, slot: _Slot) -> None:
        self.requests += slot.requests
        self.errors += slot.errors
        hist = self.hist
        for b, n in slot.hist.items():
            hist[b] = hist.get(b, 0) + n

    def remove(self, slot: _Slot) -> None:
        self.requests -= slot.requests
        self.errors -= slot.errors
        hist = self.hist
        for b, n in slot.hist.items():
            left = hist[b] - n
            if left:
                hist[b] = left
            else:
                del hist[b]


class RollingWindow:
    """Per-service per-second slots of routed traffic, queried over any window up to max_window_s.

    Fed and queried on the engine loop only (the recorder and the alert evaluator), so it takes no lock.
    """

    def __init__(self, clock: Clock, max_window_s: int = MAX_WINDOW_S) -> None:
        self._clock = clock
        self.max_window_s = max_window_s
        self._n = max_window_s + 2  # the current second and one spare: a full window never reads a reused slot
        self._rings: dict[str, list[_Slot | None]] = {}
        self._last: dict[str, int] = {}  # the newest second each service had traffic in
        self._sums: dict[tuple[str, int], _Sum] = {}

    def add(self, service: str, latency_ms: float, ok: bool) -> None:
        """Count one routed request that ended now."""
        slot = self._slot(service)
        slot.requests += 1
        if not ok:
            slot.errors += 1
        b = bucket_of(latency_ms)
        slot.hist[b] = slot.hist.get(b, 0) + 1

    def add_successes(self, service: str, latencies_ms: list[float]) -> None:
        """Count successful routed requests that ended now: add(service, x, True) for each."""
        slot = self._slot(service)
        slot.requests += len(latencies_ms)
        hist = slot.hist
        log, ceil, log_gamma = math.log, math.ceil, _LOG_GAMMA
        for latency_ms in latencies_ms:  # bucket_of, inlined
            b = ceil(log(latency_ms if latency_ms > _MIN_MS else _MIN_MS) / log_gamma)
            hist[b] = hist.get(b, 0) + 1

    def _slot(self, service: str) -> _Slot:
        """The service's slot of the current second (a new one when the ring's slot holds an older second)."""
        second = int(self._clock.monotonic())
        ring = self._rings.get(service)
        if ring is None:
            ring = self._rings[service] = [None] * self._n
        i = second % self._n
        slot = ring[i]
        if slot is None or slot.second != second:
            slot = ring[i] = _Slot(second)
            self._last[service] = second
        return slot

    def counts(self, service: str, window_s: int) -> WindowCounts:
        """Requests and errors over the last window_s seconds (0 and 0 when none were routed)."""
        now = int(self._clock.monotonic())
        total = self._sum(service, window_s, now)
        if total is None:
            return WindowCounts(0, 0)
        current = self._current(service, now)
        if current is None:
            return WindowCounts(total.requests, total.errors)
        return WindowCounts(total.requests + current.requests, total.errors + current.errors)

    def quantile(self, service: str, window_s: int, q: float) -> float | None:
        """The nearest-rank q-th percentile (0..100) of latency in ms over the last window_s seconds, within
        RELATIVE_ERROR; None when no request was routed in it."""
        now = int(self._clock.monotonic())
        total = self._sum(service, window_s, now)
        if total is None:
            return None
        hist, count = total.hist, total.requests
        current = self._current(service, now)
        if current is not None:
            hist = dict(hist)
            for b, n in current.hist.items():
                hist[b] = hist.get(b, 0) + n
            count += current.requests
        if count == 0:
            return None
        rank, seen = nearest_rank(q, count), 0
        for b in sorted(hist):
            seen += hist[b]
            if seen >= rank:
                return bucket_value(b)
        raise AssertionError("histogram counts disagree with the request count")

    def prune(self) -> None:
        """Forget services with no traffic for a whole window and sums not asked for as long (call now and then)."""
        oldest = int(self._clock.monotonic()) - self._n
        for service in [s for s, last in self._last.items() if last <= oldest]:
            del self._last[service]
            del self._rings[service]
        for key in [k for k, v in self._sums.items() if v.used <= oldest or k[0] not in self._rings]:
            del self._sums[key]

    def services(self) -> int:
        """How many services have slots held (for the memory figure)."""
        return len(self._rings)

    def _current(self, service: str, now: int) -> _Slot | None:
        slot = self._rings[service][now % self._n]
        return slot if slot is not None and slot.second == now else None

    def _sum(self, service: str, window_s: int, now: int) -> _Sum | None:
        """The running sum of the completed seconds (now - window_s, now - 1], moved on to now."""
        ring = self._rings.get(service)
        if ring is None:
            return None
        if not 1 <= window_s <= self.max_window_s:
            raise ValueError(f"window_s must be within 1..{self.max_window_s}")
        n, lo, hi = self._n, now - window_s, now - 1
        key = (service, window_s)
        total = self._sums.get(key)
        # rebuilt when nothing of it is left or a slot it holds may have been reused since (the ring wrapped)
        if total is None or total.hi <= lo or total.lo + 1 <= now - n:
            total = self._sums[key] = _Sum(lo, lo)
        for second in range(total.hi + 1, hi + 1):
            slot = ring[second % n]
            if slot is not None and slot.second == second:
                total.add(slot)
        for second in range(total.lo + 1, lo + 1):
            slot = ring[second % n]
            if slot is not None and slot.second == second:
                total.remove(slot)
        total.lo, total.hi, total.used = lo, max(total.hi, hi), now
        return total
