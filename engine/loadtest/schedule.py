"""When each request of a ramping-rate run is due, as k6's ramping-arrival-rate: stages the rate moves through.

The rate starts at `start_rps` and moves linearly to each stage's target over the stage's duration. The number
of requests due by time t, N(t), is the integral of the rate: a quadratic in each stage. Request k (0-based, over
all shares) is due at the earliest t with N(t) = k, found per stage by solving that quadratic exactly:
with m = k - N(stage start), r0 the stage's starting rate and a its slope, x = 2m / (r0 + sqrt(r0² + 2am)), a
form that holds for flat stages (a = 0), ramps down and ramps from 0 alike and loses no precision when a is small.
A stretch at rate 0 holds no request: the next one is due where the rate rises again. The schedule holds
floor(N(end)) requests, as the constant rate's floor(rate * duration).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Ramp", "StageLike", "cumulative", "due_offsets", "planned", "ramp_of", "scheduled_total"]

Ramp = tuple[tuple[float, float], ...]
"""Stages as (duration s, target req/s) pairs."""


class StageLike(Protocol):
    """A stage as the contract has it (LoadStage)."""

    @property
    def durationS(self) -> float: ...

    @property
    def targetRps(self) -> float: ...


def ramp_of(stages: Iterable[StageLike | tuple[float, float]]) -> Ramp:
    """(duration, target) pairs from contract stages or pairs."""
    return tuple(s if isinstance(s, tuple) else (s.durationS, s.targetRps) for s in stages)


@dataclass(frozen=True)
class _Segment:
    start_s: float
    duration_s: float
    r0: float  # rate at its start
    slope: float  # req/s per s
    n0: float  # requests due before it
    n1: float  # requests due by its end


def _segments(start_rps: float, ramp: Ramp) -> tuple[_Segment, ...]:
    out = []
    t = n = 0.0
    rate = start_rps
    for duration, target in ramp:
        n_end = n + (rate + target) / 2 * duration
        out.append(_Segment(t, duration, rate, (target - rate) / duration, n, n_end))
        t, n, rate = t + duration, n_end, target
    return tuple(out)


def _tolerance(n: float) -> float:
    """How far a float sum may miss an integer it should be (relative: totals reach 10¹²)."""
    return 1e-9 * max(1.0, abs(n))


def cumulative(start_rps: float, stages: Iterable[StageLike | tuple[float, float]], t: float) -> float:
    """N(t): the requests due in [0, t] (t clamped to the schedule)."""
    n = 0.0
    for seg in _segments(start_rps, ramp_of(stages)):
        if t <= seg.start_s:
            break
        x = min(t - seg.start_s, seg.duration_s)
        n = seg.n0 + seg.r0 * x + seg.slope * x * x / 2
    return n


def scheduled_total(start_rps: float, stages: Iterable[StageLike | tuple[float, float]]) -> int:
    """Requests the whole schedule holds (all shares)."""
    ramp = ramp_of(stages)
    n = cumulative(start_rps, ramp, math.inf)
    return math.floor(n + _tolerance(n))


def planned(start_rps: float, stages: Iterable[StageLike | tuple[float, float]], second: int) -> float:
    """The requests due in second `second` of the run (1-based: [second - 1, second)), the rate's integral there."""
    ramp = ramp_of(stages)
    return cumulative(start_rps, ramp, float(second)) - cumulative(start_rps, ramp, float(second - 1))


def due_offsets(start_rps: float, ramp: Ramp, ks: range) -> Iterator[float]:
    """When each request k of ks (increasing) is due, in seconds from the start of the run."""
    segs = _segments(start_rps, ramp)
    if not segs:
        return
    i, last = 0, len(segs) - 1
    seg = segs[0]
    sqrt = math.sqrt
    for k in ks:
        while i < last and k > seg.n1 + _tolerance(seg.n1):  # the earliest stage by whose end k are due
            i += 1
            seg = segs[i]
        m = k - seg.n0
        if m <= 0:
            yield seg.start_s
            continue
        disc = seg.r0 * seg.r0 + 2 * seg.slope * m
        den = seg.r0 + (sqrt(disc) if disc > 0 else 0.0)
        x = 2 * m / den if den > 0 else seg.duration_s
        yield seg.start_s + (x if x < seg.duration_s else seg.duration_s)
