"""Per-service counters of traffic the engine routes: drained once per metrics bucket, and cumulative totals."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate

from engine.stats import percentile

__all__ = [
    "LATENCY_BOUNDS_MS", "BatchListener", "BucketStats", "Listener", "RoutedTotals", "TrafficRecorder", "percentile",
]

Listener = Callable[[str, float, bool], None]  # told (service, latency_ms, ok) of every routed request
BatchListener = Callable[[str, list[float]], None]  # told (service, latencies_ms) of successes counted together

# upper bounds (inclusive, ms) of the cumulative latency histogram Prometheus sees; loopback calls take ~0.3 ms
LATENCY_BOUNDS_MS: tuple[float, ...] = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
                                        5000.0, 10000.0)


@dataclass(frozen=True)
class BucketStats:
    """Requests, errors and latency of one service in one bucket; latency None when no requests."""

    requests: int
    errors: int
    avg_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class RoutedTotals:
    """A service's routed requests since the engine started: outcomes and a cumulative latency histogram."""

    ok: int
    errors: int
    bucket_counts: tuple[int, ...]  # requests at or under each LATENCY_BOUNDS_MS bound, then all (+Inf)
    sum_ms: float

    @property
    def count(self) -> int:
        """Requests in the histogram (the +Inf bucket)."""
        return self.bucket_counts[-1]


class _Totals:
    __slots__ = ("counts", "errors", "ok", "sum_ms")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)  # per bucket, not cumulative: one increment a request
        self.ok = 0
        self.errors = 0
        self.sum_ms = 0.0


@dataclass
class _Bucket:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


class TrafficRecorder:
    """Keeps at most `max_samples` latencies per service per bucket (counts stay exact); each of `listeners`
    is told every recorded request (the alert rules' rolling window, the SLO counters), successes recorded together
    in one call to its counterpart in `batch_listeners` when given (the same listeners, in the same order).

    Written and drained on the engine loop only (router and collector), so it needs no lock;
    in_flight() and totals() may be read from any thread.
    """

    def __init__(self, max_samples: int = 100_000, listeners: tuple[Listener, ...] = (),
                 batch_listeners: tuple[BatchListener, ...] | None = None) -> None:
        if batch_listeners is not None and len(batch_listeners) != len(listeners):
            raise ValueError("batch_listeners must pair with listeners, one each")
        self._max = max_samples
        # told every request counted here (the alert rules' rolling window, the SLO counters): on the engine loop,
        # per request, so each must be O(1) and never wait
        self._listeners = listeners
        self._batch_listeners = batch_listeners
        self._buckets: dict[str, _Bucket] = {}
        self._in_flight: dict[str, int] = {}
        self._totals: dict[str, _Totals] = {}

    def begin(self, service: str) -> None:
        """A request to service was sent (a service's `load` counts these); called on the engine loop only."""
        self._in_flight[service] = self._in_flight.get(service, 0) + 1

    def in_flight(self, service: str) -> int:
        """Requests to service sent and not yet answered."""
        return self._in_flight.get(service, 0)

    def record(self, service: str, latency_ms: float, ok: bool) -> None:
        """Count one routed request that has ended (pairs with begin)."""
        self._in_flight[service] = max(0, self._in_flight.get(service, 0) - 1)
        bucket = self._buckets.get(service)
        if bucket is None:
            bucket = self._buckets[service] = _Bucket()
        bucket.requests += 1
        if not ok:
            bucket.errors += 1
        if len(bucket.latencies) < self._max:
            bucket.latencies.append(latency_ms)
        totals = self._totals.get(service)
        if totals is None:
            totals = self._totals[service] = _Totals()
        totals.counts[bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += 1  # first bound >= latency: `le` buckets
        totals.sum_ms += latency_ms
        if ok:
            totals.ok += 1
        else:
            totals.errors += 1
        for listener in self._listeners:
            listener(service, latency_ms, ok)

    def record_successes(self, service: str, latencies_ms: list[float]) -> None:
        """Count successful routed requests of one service that have ended: record(service, x, True) for each."""
        n = len(latencies_ms)
        self._in_flight[service] = max(0, self._in_flight.get(service, 0) - n)
        bucket = self._buckets.get(service)
        if bucket is None:
            bucket = self._buckets[service] = _Bucket()
        bucket.requests += n
        room = self._max - len(bucket.latencies)
        if room > 0:
            bucket.latencies.extend(latencies_ms if n <= room else latencies_ms[:room])
        totals = self._totals.get(service)
        if totals is None:
            totals = self._totals[service] = _Totals()
        counts = totals.counts
        for latency_ms in latencies_ms:
            counts[bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += 1
        totals.sum_ms += sum(latencies_ms)
        totals.ok += n
        if self._batch_listeners is not None:
            for batch in self._batch_listeners:
                batch(service, latencies_ms)
            return
        for listener in self._listeners:
            for latency_ms in latencies_ms:
                listener(service, latency_ms, True)

    def totals(self) -> dict[str, RoutedTotals]:
        """Every service's cumulative counts since start (never reset; for Prometheus), read from any thread."""
        # list(): one C-level copy each, safe against the loop inserting a service or counting a request meanwhile
        return {
            service: RoutedTotals(t.ok, t.errors, tuple(accumulate(list(t.counts))), t.sum_ms)
            for service, t in list(self._totals.items())
        }

    def drain(self, service: str) -> BucketStats:
        """Return and reset the service's counters."""
        bucket = self._buckets.pop(service, None) or _Bucket()
        values = sorted(bucket.latencies)
        if not values:
            return BucketStats(bucket.requests, bucket.errors, None, None, None, None)
        return BucketStats(
            bucket.requests,
            bucket.errors,
            sum(values) / len(values),
            percentile(values, 50),
            percentile(values, 95),
            percentile(values, 99),
        )
