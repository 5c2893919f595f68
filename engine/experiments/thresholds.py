"""An experiment's thresholds, judged second by second on the load's merged tallies.

A threshold without windowS is on the whole load so far: each second's cumulative figure is checked (so an
abortOnFail threshold can halt the run) and its result is the last figure. A threshold with windowS is checked each
second on the last windowS seconds of load (fewer at the start: the window holds what the load has had), and its
result is the worst window's figure, failing if any window failed. A window or run without requests is not judged.

Latency figures come from the corrected histogram (measured from each request's due time) in ms; errorRate and
availability are % of completed requests; dropped is a count; rps is requests sent per second of the span.
Each window length keeps one running sum and subtracts the second that leaves it, so add() costs the same for a
10-second and a 3600-second window; the seconds themselves are kept once, as sparse histograms.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from contract.experiments import (
    ExperimentSecondOut,
    Threshold,
    ThresholdMetric,
    ThresholdOp,
    ThresholdResultOut,
    Verdict,
    threshold_text,
)
from engine.loadtest.generator import Tally
from engine.loadtest.hdr import Histogram

__all__ = ["ThresholdBook", "second_figures"]

_PERCENTILE = {ThresholdMetric.P50: 50.0, ThresholdMetric.P90: 90.0, ThresholdMetric.P95: 95.0,
               ThresholdMetric.P99: 99.0, ThresholdMetric.P999: 99.9}
_LATENCY = {*_PERCENTILE, ThresholdMetric.MAX, ThresholdMetric.MEAN}
_HOLDS: dict[ThresholdOp, Callable[[float, float], bool]] = {
    ThresholdOp.LT: operator.lt, ThresholdOp.LE: operator.le, ThresholdOp.GT: operator.gt,
    ThresholdOp.GE: operator.ge, ThresholdOp.EQ: operator.eq,
}


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000


def second_figures(second: int, planned: float, tally: Tally) -> ExperimentSecondOut:
    """One second of load as the run records it: counts, corrected p50/p95/p99 in ms and the error rate in %."""
    p = tally.corrected.percentiles((50.0, 95.0, 99.0))
    done = tally.ok + tally.failed
    return ExperimentSecondOut(second=second, planned=planned, sent=tally.sent, ok=tally.ok, failed=tally.failed,
                               dropped=tally.dropped, p50=_ms(p[50.0]), p95=_ms(p[95.0]), p99=_ms(p[99.0]),
                               errorRate=100 * tally.failed / done if done else None)


@dataclass(frozen=True)
class _Second:
    """One second of load as windows keep it: counts and the corrected histogram in sparse form."""

    second: int
    sent: int
    ok: int
    failed: int
    dropped: int
    max_us: int
    latency: dict[str, int]


@dataclass
class _Span:
    """Running sums over a stretch of seconds (the whole load, or one window length)."""

    length: int | None  # None: the whole load so far
    sent: int = 0
    ok: int = 0
    failed: int = 0
    dropped: int = 0
    latency: Histogram = field(default_factory=Histogram)
    seconds: deque[_Second] = field(default_factory=deque)

    def add(self, tally: Tally, second: _Second | None) -> None:
        """Take in one second (a window needs it kept); a window lets go of the seconds now older than its length."""
        self.sent += tally.sent
        self.ok += tally.ok
        self.failed += tally.failed
        self.dropped += tally.dropped
        self.latency.merge(tally.corrected)
        if self.length is None or second is None:
            return
        self.seconds.append(second)
        leaving = False
        while self.seconds[0].second <= second.second - self.length:
            old = self.seconds.popleft()
            self.sent -= old.sent
            self.ok -= old.ok
            self.failed -= old.failed
            self.dropped -= old.dropped
            self.latency.subtract(Histogram.from_sparse(old.latency))
            leaving = True
        if leaving:  # the histogram cannot know its max once values leave; the seconds still in it do
            self.latency.max = max(s.max_us for s in self.seconds) if self.latency.count else 0

    def figures(self, metrics: set[ThresholdMetric], elapsed_s: int) -> dict[ThresholdMetric, float | None]:
        """Each metric's figure over the span (None where it has nothing to measure)."""
        if not (self.sent or self.ok or self.failed or self.dropped):
            return dict.fromkeys(metrics)
        out: dict[ThresholdMetric, float | None] = {}
        wanted = [m for m in metrics if m in _PERCENTILE]
        got = self.latency.percentiles(_PERCENTILE[m] for m in wanted) if wanted else {}
        done = self.ok + self.failed
        span_s = elapsed_s if self.length is None else min(self.length, elapsed_s)
        for metric in metrics:
            if metric in _PERCENTILE:
                out[metric] = _ms(got[_PERCENTILE[metric]])
            elif metric is ThresholdMetric.MAX:
                out[metric] = _ms(self.latency.max) if self.latency.count else None
            elif metric is ThresholdMetric.MEAN:
                out[metric] = _ms(self.latency.mean_us())
            elif metric is ThresholdMetric.ERROR_RATE:
                out[metric] = 100 * self.failed / done if done else None
            elif metric is ThresholdMetric.AVAILABILITY:
                out[metric] = 100 * self.ok / done if done else None
            elif metric is ThresholdMetric.DROPPED:
                out[metric] = float(self.dropped)
            else:
                out[metric] = self.sent / span_s
        return out


@dataclass
class _Outcome:
    ok: bool | None = None
    figure: float | None = None
    failed_at_s: float | None = None
    aborted: bool = False


class ThresholdBook:
    """Judges an experiment's thresholds on each merged second of its load; results() and verdict() any time."""

    def __init__(self, thresholds: Sequence[Threshold]) -> None:
        self._thresholds = list(thresholds)
        self._outcomes = [_Outcome() for _ in self._thresholds]
        self._spans: dict[int | None, _Span] = {t.windowS: _Span(t.windowS) for t in self._thresholds}
        self._metrics: dict[int | None, set[ThresholdMetric]] = {length: set() for length in self._spans}
        for t in self._thresholds:
            self._metrics[t.windowS].add(t.metric)
        self._windowed = any(length is not None for length in self._spans)

    def add(self, second: int, tally: Tally) -> list[int]:
        """Feed one merged second of the load phase (0-based, in order); returns the indices of thresholds with
        abortOnFail that fail now and are past their delayS (the runner halts on a non-empty answer)."""
        kept = _Second(second, tally.sent, tally.ok, tally.failed, tally.dropped, tally.corrected.max,
                       tally.corrected.to_sparse()) if self._windowed else None
        elapsed_s = second + 1
        figures: dict[int | None, dict[ThresholdMetric, float | None]] = {}
        for length, span in self._spans.items():
            span.add(tally, kept)
            figures[length] = span.figures(self._metrics[length], elapsed_s)
        halt: list[int] = []
        for index, (t, outcome) in enumerate(zip(self._thresholds, self._outcomes, strict=True)):
            figure = figures[t.windowS][t.metric]
            if figure is None:
                continue
            holds = _HOLDS[t.op](figure, t.value)
            if t.windowS is None:
                outcome.figure, outcome.ok = figure, holds
            else:
                if outcome.figure is None or _worse(t.op, t.value, figure, outcome.figure):
                    outcome.figure = figure
                outcome.ok = holds if outcome.ok is not False else False
            if not holds:
                if outcome.failed_at_s is None:
                    outcome.failed_at_s = float(elapsed_s)
                if t.abortOnFail and elapsed_s >= t.delayS:
                    outcome.aborted = True
                    halt.append(index)
        return halt

    def results(self) -> list[ThresholdResultOut]:
        """Each threshold's outcome so far (ok None while nothing was measured); failedAtS only while it fails."""
        return [ThresholdResultOut(index=i, expression=threshold_text(t), metric=t.metric, ok=o.ok, figure=o.figure,
                                   failedAtS=o.failed_at_s if o.ok is False else None, aborted=o.aborted)
                for i, (t, o) in enumerate(zip(self._thresholds, self._outcomes, strict=True))]

    def verdict(self) -> Verdict | None:
        """FAIL if any threshold failed, PASS if every one held, None while any is unmeasured (or there are none)."""
        oks = [o.ok for o in self._outcomes]
        if False in oks:
            return Verdict.FAIL
        if oks and all(oks):
            return Verdict.PASS
        return None


def _worse(op: ThresholdOp, value: float, figure: float, than: float) -> bool:
    """figure is further on the failing side of `op value` than `than` is."""
    if op in (ThresholdOp.LT, ThresholdOp.LE):
        return figure > than
    if op in (ThresholdOp.GT, ThresholdOp.GE):
        return figure < than
    return abs(figure - value) > abs(than - value)
