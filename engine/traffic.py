"""Per-service counters of traffic the engine routes, drained once per metrics bucket."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["BucketStats", "TrafficRecorder", "percentile"]


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class BucketStats:
    """Requests, errors and latency of one service in one bucket; latency None when no requests."""

    requests: int
    errors: int
    avg_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass
class _Bucket:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


class TrafficRecorder:
    """Keeps at most `max_samples` latencies per service per bucket (counts stay exact).

    Written and drained on the engine loop only (router and collector), so it needs no lock;
    in_flight() may be read from any thread.
    """

    def __init__(self, max_samples: int = 100_000) -> None:
        self._max = max_samples
        self._buckets: dict[str, _Bucket] = {}
        self._in_flight: dict[str, int] = {}

    def begin(self, service: str) -> None:
        """A request to service was sent (the seed's `load` counts these); called on the engine loop only."""
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
