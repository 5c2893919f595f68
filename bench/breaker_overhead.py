"""Breaker overhead on a no-op call: ours (allow + record) vs pybreaker's CircuitBreaker.call, same machine."""

from __future__ import annotations

import sys
import timeit

import pybreaker

import bench.common  # noqa: F401 - puts the project on sys.path
from bench.common import report
from engine.clock import SystemClock
from engine.traffic.breaker import BreakerConfig, CircuitBreaker

CALLS = 100_000


def noop() -> None:
    return None


def main() -> int:
    ours = CircuitBreaker("bench", BreakerConfig(), SystemClock())
    theirs = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)

    def with_ours() -> None:
        if ours.allow():
            noop()
            ours.record_success(0.0)

    def with_pybreaker() -> None:
        theirs.call(noop)

    def best_ns(fn: object) -> float:
        return min(timeit.repeat(fn, number=CALLS, repeat=5)) / CALLS * 1e9  # type: ignore[arg-type]

    bare = best_ns(noop)
    a, b = best_ns(with_ours), best_ns(with_pybreaker)
    print(f"bare no-op call: {bare:.0f} ns")
    report("breaker around a no-op call (allow + record vs pybreaker.call)", a, b, "pybreaker", unit="ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
