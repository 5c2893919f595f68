"""Experiment thresholds: each metric and comparison, the whole load vs sliding windows, abortOnFail after delayS,
the verdict, and the per-second figures."""

from __future__ import annotations

import random

import pytest
from pydantic import TypeAdapter

from contract.experiments import Threshold, Verdict
from engine.experiments.thresholds import ThresholdBook, second_figures
from engine.loadtest.generator import Tally
from engine.loadtest.hdr import Histogram

THRESHOLD = TypeAdapter(Threshold)


def ms(us: float | None) -> float:
    """A known histogram figure in ms."""
    assert us is not None
    return us / 1000


def threshold(text: str, **extra):
    """A threshold from its short form plus any other fields."""
    parsed = THRESHOLD.validate_python(text)
    return parsed.model_copy(update=extra) if extra else parsed


def tally(latencies_us=(), *, sent=None, failed=0, dropped=0):
    """One second: each latency a completed request (the last `failed` of them failed)."""
    t = Tally(sent=len(latencies_us) if sent is None else sent, ok=len(latencies_us) - failed, failed=failed,
              dropped=dropped)
    for v in latencies_us:
        t.corrected.record(v)
        t.uncorrected.record(v)
    return t


# 100 requests of 101..200 µs (below 256 µs every value has its own bucket), 20 failed, 5 dropped, in one second
KNOWN = tuple(range(101, 201))
METRICS = [("p50", 0.150), ("p90", 0.190), ("p95", 0.195), ("p99", 0.199), ("p999", 0.200), ("max", 0.200),
           ("mean", 0.1505), ("errorRate", 20.0), ("availability", 80.0), ("dropped", 5.0), ("rps", 100.0)]


@pytest.mark.parametrize(("metric", "want"), METRICS, ids=[m for m, _ in METRICS])
def test_each_metric_figure_over_one_known_second(metric, want):
    book = ThresholdBook([threshold(f"{metric} < 1000000")])
    assert book.add(0, tally(KNOWN, failed=20, dropped=5)) == []
    (result,) = book.results()
    assert result.figure == pytest.approx(want, abs=1e-9)
    assert (result.ok, result.failedAtS, result.metric.value) == (True, None, metric)


OPS = [("<", False), ("<=", True), (">", False), (">=", True), ("==", True), ("=", True)]


@pytest.mark.parametrize(("op", "holds"), OPS, ids=[op for op, _ in OPS])
def test_each_comparison_at_its_boundary(op, holds):
    book = ThresholdBook([threshold(f"errorRate {op} 20")])
    book.add(0, tally(KNOWN, failed=20))
    (result,) = book.results()
    assert (result.figure, result.ok) == (20.0, holds)
    assert result.failedAtS == (None if holds else 1.0)
    assert book.verdict() is (Verdict.PASS if holds else Verdict.FAIL)


def test_the_p95_figure_is_the_corrected_histograms_in_ms():
    rng = random.Random(7)
    values = [int(rng.lognormvariate(10, 1)) for _ in range(5000)]
    t = tally(values)
    for v in values:  # the uncorrected histogram is not what thresholds read
        t.uncorrected.record(1)
    book = ThresholdBook([threshold("p95 < 1")])
    book.add(0, t)
    reference = Histogram()
    for v in values:
        reference.record(v)
    assert book.results()[0].figure == ms(reference.percentiles([95])[95])


FAST, SLOW = [1_000] * 100, [100_000] * 50


def run(book, seconds):
    """Feed seconds in order; the halt answers by second."""
    return [book.add(i, t) for i, t in enumerate(seconds)]


def test_whole_load_threshold_ends_on_its_last_figure_while_a_window_fails_once_for_good():
    # 20 seconds of 1 ms requests, except second 5: 50 requests of 100 ms
    seconds = [tally(SLOW if i == 5 else FAST) for i in range(20)]
    book = ThresholdBook([threshold("p95 < 50"), threshold("p95 < 50", windowS=2)])
    run(book, seconds)
    whole, window = book.results()
    everything = Histogram()
    for t in seconds:
        everything.merge(t.corrected)
    assert (whole.ok, whole.failedAtS) == (True, None)  # failed at 6 s (50 of 550 slow), held at the end
    assert whole.figure == ms(everything.percentiles([95])[95]) == 1.003  # the top of 1000 µs's bucket
    worst = Histogram()
    worst.merge(seconds[5].corrected)  # the window that ends at second 5 holds second 4 too: 50 slow of 150
    worst.merge(seconds[4].corrected)
    assert (window.ok, window.failedAtS) == (False, 6.0)
    assert window.figure == ms(worst.percentiles([95])[95]) > 50
    assert window.expression == "p95 < 50 over 2 s"
    assert book.verdict() is Verdict.FAIL


def test_whole_load_threshold_that_fails_at_the_end_reports_when_it_first_failed():
    book = ThresholdBook([threshold("errorRate < 10")])
    run(book, [tally(FAST), tally(FAST, failed=50), tally(FAST, failed=50)])
    (result,) = book.results()
    assert (result.ok, result.failedAtS) == (False, 2.0)
    assert result.figure == pytest.approx(100 * 100 / 300)


@pytest.mark.parametrize("window", [1, 7, 30], ids=["1s", "7s", "30s"])
def test_a_sliding_window_is_what_merging_its_seconds_afresh_gives(window):
    rng = random.Random(window)
    seconds = []
    for _ in range(40):
        n = rng.randrange(0, 60)
        values = [int(rng.lognormvariate(8 + rng.random() * 3, 1)) for _ in range(n)]
        seconds.append(tally(values, sent=n + rng.randrange(3), failed=rng.randrange(n + 1),
                             dropped=rng.randrange(4)))
    texts = ["p95 < 0", "p99 < 0", "max < 0", "mean < 0", "errorRate < 0", "dropped < 0", "rps > 1000000",
             "availability > 100"]
    book = ThresholdBook([threshold(text, windowS=window) for text in texts])
    run(book, seconds)
    worst: dict[str, float] = {}
    for s in range(len(seconds)):
        span = seconds[max(0, s + 1 - window):s + 1]
        merged = Histogram()
        for t in span:
            merged.merge(t.corrected)
        ok, failed = sum(t.ok for t in span), sum(t.failed for t in span)
        figures = {"dropped": sum(t.dropped for t in span), "rps": sum(t.sent for t in span) / len(span)}
        if merged.count:
            p = merged.percentiles([95, 99])
            figures |= {"p95": ms(p[95]), "p99": ms(p[99]), "max": ms(merged.max), "mean": ms(merged.mean_us())}
        if ok + failed:
            figures |= {"errorRate": 100 * failed / (ok + failed), "availability": 100 * ok / (ok + failed)}
        for name, figure in figures.items():
            lowest_is_worst = name in ("rps", "availability")
            if name not in worst or (figure < worst[name] if lowest_is_worst else figure > worst[name]):
                worst[name] = figure
    got = {r.metric.value: r.figure for r in book.results()}
    assert got == pytest.approx(worst)


def test_no_requests_leave_every_threshold_unmeasured():
    book = ThresholdBook([threshold("p95 < 10"), threshold("errorRate < 1", windowS=5), threshold("rps > 1")])
    run(book, [Tally(), Tally(), Tally()])
    assert [(r.ok, r.figure, r.failedAtS) for r in book.results()] == [(None, None, None)] * 3
    assert book.verdict() is None


def test_dropped_only_measures_dropped_and_rps_not_latency_or_errors():
    book = ThresholdBook([threshold("p95 < 10"), threshold("errorRate < 1"), threshold("dropped < 1"),
                          threshold("rps > 1")])
    book.add(0, tally(sent=0, dropped=7))
    assert [(r.ok, r.figure) for r in book.results()] == [(None, None), (None, None), (False, 7.0), (False, 0.0)]


def test_abort_on_fail_is_returned_only_from_delay_s_on_and_the_earlier_failure_still_counts():
    failing = tally(FAST, failed=100)
    book = ThresholdBook([threshold("errorRate < 10", abortOnFail=True, delayS=3),
                          threshold("errorRate < 5"),
                          threshold("errorRate < 10", abortOnFail=True, delayS=30)])
    assert run(book, [failing, failing, failing, failing]) == [[], [], [0], [0]]
    first, plain, late = book.results()
    assert (first.aborted, first.failedAtS) == (True, 1.0)
    assert (plain.aborted, late.aborted, late.ok, late.failedAtS) == (False, False, False, 1.0)
    assert book.verdict() is Verdict.FAIL


def test_abort_on_fail_without_delay_acts_in_the_first_failing_second_of_a_window():
    book = ThresholdBook([threshold("p99 < 50", windowS=3, abortOnFail=True)])
    assert run(book, [tally(FAST), tally(FAST), tally(SLOW)]) == [[], [], [0]]
    assert book.results()[0].failedAtS == 3.0


VERDICTS = [
    ("all-held", ["p95 < 50", "errorRate < 1"], [tally(FAST)], Verdict.PASS),
    ("one-failed", ["p95 < 50", "errorRate < 1"], [tally(FAST, failed=10)], Verdict.FAIL),
    ("one-unmeasured", ["p95 < 50", "errorRate < 1"], [tally(sent=3, dropped=2)], None),
    ("failed-beats-unmeasured", ["p95 < 50", "dropped < 1"], [tally(sent=3, dropped=2)], Verdict.FAIL),
    ("no-thresholds", [], [tally(FAST)], None),
    ("nothing-yet", ["p95 < 50"], [], None),
]


@pytest.mark.parametrize(("texts", "seconds", "want"), [v[1:] for v in VERDICTS], ids=[v[0] for v in VERDICTS])
def test_verdict(texts, seconds, want):
    book = ThresholdBook([threshold(text) for text in texts])
    run(book, seconds)
    assert book.verdict() is want


def test_second_figures_are_corrected_latency_in_ms_and_the_error_rate():
    t = tally(KNOWN, sent=110, failed=25, dropped=4)
    t.uncorrected.record(9_999_999)
    got = second_figures(3, 120.5, t)
    assert got.model_dump() == {"second": 3, "planned": 120.5, "sent": 110, "ok": 75, "failed": 25, "dropped": 4,
                                "p50": 0.15, "p95": 0.195, "p99": 0.199, "errorRate": 25.0}
    empty = second_figures(0, 0, Tally())
    assert (empty.p50, empty.p95, empty.p99, empty.errorRate) == (None, None, None, None)
