"""The log-linear histogram: exact below 256 µs, <= 1/128 relative error above, mergeable, bounded."""

from __future__ import annotations

import random

import pytest

from engine.loadtest.hdr import MAX_US, Histogram
from engine.traffic.recorder import percentile


def test_small_values_are_exact_and_percentiles_use_nearest_rank():
    h = Histogram()
    for v in range(1, 101):
        h.record(v)
    assert h.percentiles([50, 99, 100]) == {50: 50, 99: 99, 100: 100}
    assert (h.count, h.max, h.mean_us()) == (100, 100, 50.5)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_are_within_one_percent_of_the_exact_ones(seed):
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(9, 1.5)) for _ in range(20_000)]  # ~8 ms median, long tail
    h = Histogram()
    for v in values:
        h.record(v)
    exact = sorted(values)
    for q in (50, 90, 99, 99.9):
        got = h.percentiles([q])[q]
        want = percentile([float(v) for v in exact], q)
        assert got is not None and want <= got <= want * (1 + 1 / 128) + 1, (q, got, want)
    assert h.max == exact[-1]


def test_merge_equals_recording_everything_in_one():
    a, b, both = Histogram(), Histogram(), Histogram()
    for i, v in enumerate(range(0, 5_000_000, 997)):
        (a if i % 2 else b).record(v)
        both.record(v)
    a.merge(b)
    assert a.counts == both.counts and (a.count, a.max, a.total_us) == (both.count, both.max, both.total_us)


def test_wire_form_round_trips():
    h = Histogram()
    for v in (3, 300, 30_000, 3_000_000):
        h.record(v)
    back = Histogram.from_sparse(h.to_sparse())
    assert back.counts == h.counts and (back.count, back.max, back.total_us) == (4, 3_000_000, h.total_us)


def test_memory_is_fixed_and_out_of_range_values_are_clamped_and_counted():
    h = Histogram()
    size = len(h.counts)
    h.record(-5)
    h.record(MAX_US * 10)
    assert len(h.counts) == size and h.clamped == 1
    assert h.percentiles([0.1, 100]) == {0.1: 0, 100: MAX_US}


def test_empty_histogram_has_unknown_percentiles():
    h = Histogram()
    assert h.percentiles([50, 99]) == {50: None, 99: None} and h.mean_us() is None
