"""Nearest-rank percentiles with an exact rank, shared by everything that reports one."""

from __future__ import annotations

import math
from fractions import Fraction

__all__ = ["nearest_rank", "percentile"]


def nearest_rank(q: float, count: int) -> int:
    """The 1-based nearest rank of percentile q (0..100) among count values, computed exactly: in floats
    7 / 100 x 100 is 7.000000000000001, one rank too high."""
    return max(1, math.ceil(Fraction(str(q)) * count / 100))


def percentile(ascending: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100); ValueError when it is empty."""
    if not ascending:
        raise ValueError("no values")
    return ascending[nearest_rank(q, len(ascending)) - 1]
