"""A log-linear latency histogram (the HdrHistogram layout): fixed memory, mergeable, <= 0.8 % error.

Values are whole microseconds. Below 256 µs every value has its own bucket; above, each power of
two is split into 128 equal sub-buckets, so a bucket is at most 1/128 of its values wide. Values
above MAX_US (one hour) are clamped to it and the clamp is counted. Percentiles report the highest
value a bucket can hold (as HdrHistogram's `highestEquivalentValue`), so they never understate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from engine.stats import nearest_rank

__all__ = ["MAX_US", "Histogram"]

_SUB_BITS = 7
_SUB = 1 << _SUB_BITS  # 128 sub-buckets per octave
MAX_US = 3_600_000_000
_SIZE = (MAX_US.bit_length() - _SUB_BITS) * _SUB + 2 * _SUB


def _index(value: int) -> int:
    shift = value.bit_length() - _SUB_BITS - 1
    if shift <= 0:
        return value
    return shift * _SUB + (value >> shift)


def _highest(index: int) -> int:
    """The largest value that lands in bucket `index`."""
    if index < 2 * _SUB:
        return index
    shift = index // _SUB - 1
    sub = index - shift * _SUB
    return ((sub + 1) << shift) - 1


class Histogram:
    """Counts of latencies in microseconds; record() is O(1), memory is one fixed list."""

    __slots__ = ("clamped", "count", "counts", "max", "total_us")

    def __init__(self) -> None:
        self.counts = [0] * _SIZE
        self.count = 0
        self.max = 0
        self.total_us = 0
        self.clamped = 0

    def record(self, value_us: int) -> None:
        """Count one value (negative counts as 0, above MAX_US as MAX_US)."""
        if value_us < 0:
            value_us = 0
        elif value_us > MAX_US:
            value_us = MAX_US
            self.clamped += 1
        shift = value_us.bit_length() - _SUB_BITS - 1  # _index(), inline: this runs twice per request
        self.counts[value_us if shift <= 0 else shift * _SUB + (value_us >> shift)] += 1
        self.count += 1
        self.total_us += value_us
        if value_us > self.max:  # noqa: PLR1730 - cheaper than calling max() once per request
            self.max = value_us

    def merge(self, other: Histogram) -> None:
        """Add another histogram's counts to this one."""
        if not other.count:
            return
        mine = self.counts
        for i, n in enumerate(other.counts):
            if n:
                mine[i] += n
        self.count += other.count
        self.total_us += other.total_us
        self.clamped += other.clamped
        self.max = max(self.max, other.max)

    def subtract(self, other: Histogram, max_us: int | None = None) -> None:
        """Remove counts merged in before (a sliding window's leaving part). A histogram cannot recover its max:
        pass the remaining values' max as max_us when known; otherwise max stays, an upper bound (0 once empty)."""
        if other.count:
            mine = self.counts
            leaving = [(i, n) for i, n in enumerate(other.counts) if n]
            short = next(((i, n) for i, n in leaving if mine[i] < n), None)
            if short is not None:
                raise ValueError(f"bucket {short[0]} holds {mine[short[0]]}, cannot subtract {short[1]}")
            for i, n in leaving:
                mine[i] -= n
            self.count -= other.count
            self.total_us -= other.total_us
            self.clamped -= other.clamped
        if not self.count:
            self.max = 0
        elif max_us is not None:
            self.max = max_us

    def percentiles(self, qs: Iterable[float]) -> dict[float, int | None]:
        """Nearest-rank percentiles (q in 0..100) in one pass; None for an empty histogram."""
        wanted = sorted(set(qs))
        if not self.count:
            return dict.fromkeys(wanted)
        ranks = [(q, nearest_rank(q, self.count)) for q in wanted]
        out: dict[float, int | None] = {}
        seen = 0
        k = 0
        for i, n in enumerate(self.counts):
            if not n:
                continue
            seen += n
            while k < len(ranks) and ranks[k][1] <= seen:
                out[ranks[k][0]] = min(_highest(i), self.max)
                k += 1
            if k == len(ranks):
                break
        return out

    def mean_us(self) -> float | None:
        """Exact mean of the recorded (clamped) values."""
        return self.total_us / self.count if self.count else None

    def to_sparse(self) -> dict[str, int]:
        """Non-empty buckets as {index: count} (JSON-friendly) plus the exact max/total under '_' keys."""
        out = {str(i): n for i, n in enumerate(self.counts) if n}
        out.update({"_max": self.max, "_total": self.total_us, "_clamped": self.clamped})
        return out

    @classmethod
    def from_sparse(cls, data: Mapping[str, int]) -> Histogram:
        """The inverse of to_sparse()."""
        h = cls()
        for key, n in data.items():
            if not key.startswith("_"):
                h.counts[int(key)] += n
                h.count += n
        h.max, h.total_us, h.clamped = data.get("_max", 0), data.get("_total", 0), data.get("_clamped", 0)
        return h
