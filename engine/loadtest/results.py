"""A running load test's latency as contract models, from its live histograms."""

from __future__ import annotations

from contract.loadtest import (
    LatencyOut,
    LatencyPairOut,
)
from engine.loadtest.generator import PERCENTILES
from engine.loadtest.hdr import Histogram

__all__ = ["latency_out", "latency_pair"]

def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000.0, 3)


def latency_out(h: Histogram) -> LatencyOut:
    """p50/p90/p95/p99/p99.9/max/mean of a histogram, in milliseconds (None when empty)."""
    p = h.percentiles(PERCENTILES)
    return LatencyOut(p50=_ms(p[50.0]), p90=_ms(p[90.0]), p95=_ms(p[95.0]), p99=_ms(p[99.0]), p999=_ms(p[99.9]),
                      max=_ms(h.max) if h.count else None, mean=_ms(h.mean_us()))


def latency_pair(corrected: Histogram, uncorrected: Histogram) -> LatencyPairOut:
    """Corrected and uncorrected latency of the same requests."""
    return LatencyPairOut(corrected=latency_out(corrected), uncorrected=latency_out(uncorrected))


