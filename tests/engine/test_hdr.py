"""The log-linear histogram: exact below 256 µs, <= 1/128 relative error above, mergeable, bounded."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from engine import stats
from engine.loadtest.hdr import MAX_US, Histogram


def nearest_rank(values, q):
    """The reference: the value at rank ceil(q/100 x n) of the sorted values, in exact arithmetic."""
    ordered = sorted(values)
    rank = max(1, -(-Fraction(str(q)) * len(ordered) // 100))
    return ordered[rank - 1]


def bucket_top(value):
    """The highest value of `value`'s bucket: width 1 below 256, else 2^(bit_length - 8) (128 per octave)."""
    width = 1 << max(0, value.bit_length() - 8)
    return value | (width - 1)


def test_small_values_are_exact_and_percentiles_use_nearest_rank():
    h = Histogram()
    for v in range(1, 101):
        h.record(v)
    assert h.percentiles([50, 99, 100]) == {50: 50, 99: 99, 100: 100}
    assert (h.count, h.max, h.mean_us()) == (100, 100, 50.5)


QS = (0.1, 1, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_are_the_top_of_the_exact_values_bucket_within_1_in_128(seed):
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(9, 1.5)) for _ in range(20_000)]  # ~8 ms median, long tail
    h = Histogram()
    for v in values:
        h.record(v)
    got = h.percentiles(QS)
    for q in QS:
        want = nearest_rank(values, q)
        assert got[q] == min(bucket_top(want), max(values)), (q, got[q], want)  # never capped: max is exact
        assert want <= got[q] <= want * (1 + 1 / 128), (q, got[q], want)
    assert h.max == max(values)


# (n, q) where q / 100 x n is a whole number that float arithmetic puts just above it (7 / 100 x 100 is
# 7.000000000000001): the rank is that number, not one more
FLOAT_RANKS = [(100, 7), (100, 55), (200, 3.5), (1000, 0.9), (1000, 99.9)]


@pytest.mark.parametrize(("n", "q"), FLOAT_RANKS, ids=[f"p{q}-of-{n}" for n, q in FLOAT_RANKS])
def test_the_rank_is_exact_where_float_arithmetic_rounds_up(n, q):
    values = [int(256 * 1.01**k) for k in range(n)]  # 1 % apart, wider than a bucket: each in its own
    assert len({bucket_top(v) for v in values}) == n
    h = Histogram()
    for v in values:
        h.record(v)
    assert h.percentiles([q])[q] == min(bucket_top(nearest_rank(values, q)), max(values))


def test_merge_equals_recording_everything_in_one():
    a, b, both = Histogram(), Histogram(), Histogram()
    for i, v in enumerate(range(0, 5_000_000, 997)):
        (a if i % 2 else b).record(v)
        both.record(v)
    a.merge(b)
    assert a.counts == both.counts and (a.count, a.max, a.total_us) == (both.count, both.max, both.total_us)


def test_subtract_undoes_merge_and_takes_the_remaining_max_when_given():
    first, second, both = Histogram(), Histogram(), Histogram()
    for v in (5, 700, 90_000):
        first.record(v)
    for v in (40, 7_000, 2_000_000, MAX_US * 2):
        second.record(v)
    both.merge(first)
    both.merge(second)
    both.subtract(first, max_us=second.max)
    assert both.counts == second.counts
    assert (both.count, both.total_us, both.clamped, both.max) == (4, second.total_us, 1, MAX_US)
    assert both.percentiles([50, 95]) == second.percentiles([50, 95])
    both.subtract(second)
    assert (both.count, both.total_us, both.max, any(both.counts)) == (0, 0, 0, False)


def test_subtract_keeps_max_as_a_bound_without_max_us_and_refuses_counts_it_does_not_hold():
    h, small, other = Histogram(), Histogram(), Histogram()
    for v in (10, 20, 5_000):
        h.record(v)
    small.record(5_000)
    other.record(999)
    h.subtract(small)
    assert (h.count, h.max) == (2, 5_000)
    before = list(h.counts)
    with pytest.raises(ValueError, match="cannot subtract 1"):
        h.subtract(other)
    assert h.counts == before and h.count == 2


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


@pytest.mark.parametrize(("q", "count", "rank"), [(7, 100, 7), (55, 100, 55), (99.9, 1000, 999), (99.9, 20_000, 19_980),
                                                   (50, 1, 1), (0, 10, 1), (100, 10, 10)])
def test_nearest_rank_is_exact(q, count, rank):
    assert stats.nearest_rank(q, count) == rank
    assert stats.percentile([float(v) for v in range(1, count + 1)], q) == float(rank)
