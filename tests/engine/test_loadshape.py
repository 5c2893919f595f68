"""A ramping rate's schedule (the exact inversion of N(t), per stage), its shares, its pacing on virtual time, and
the route key pattern."""

from __future__ import annotations

import itertools
import math

import pytest

from contract.loadtest import LoadStage, route_key_parts
from engine.clock import FakeClock
from engine.loadtest.generator import Plan, planned
from engine.loadtest.schedule import cumulative, due_offsets, scheduled_total
from engine.loadtest.sender import route_key
from tests.engine.test_loadgen import TICK, run

SHAPES = {
    # id: (start rps, stages, requests the schedule holds)
    "flat": (10.0, ((2.0, 10.0),), 20),
    "ramp-up": (0.0, ((4.0, 10.0),), 20),
    "ramp-down": (10.0, ((4.0, 0.0),), 20),
    "up-then-down": (50.0, ((2.0, 400.0), (2.0, 50.0)), 900),
    "to-zero-and-back": (10.0, ((1.0, 0.0), (1.5, 0.0), (1.0, 10.0)), 10),
    "from-zero-flat": (0.0, ((1.0, 0.0), (1.0, 7.0), (2.0, 7.0)), 17),
    "steps": (5.0, ((1.0, 5.0), (0.001, 300.0), (1.0, 300.0), (2.0, 1.0)), 606),
    "fractional": (3.3, ((1.7, 8.1), (0.9, 2.2)), 14),
}


def exact_n(start: float, stages: tuple[tuple[float, float], ...], t: float) -> float:
    """N(t) summed stage by stage in closed form (the schedule's own sums are not used)."""
    n, begin, rate = 0.0, 0.0, start
    for duration, target in stages:
        x = min(max(t - begin, 0.0), duration)
        n += rate * x + (target - rate) / duration * x * x / 2
        begin, rate = begin + duration, target
    return n


@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
def test_request_k_is_due_at_the_earliest_time_the_integral_reaches_k(shape):
    start, stages, total = SHAPES[shape]
    assert scheduled_total(start, stages) == total
    dues = list(due_offsets(start, stages, range(total)))
    end = sum(d for d, _ in stages)
    assert dues[0] == 0.0 and all(a <= b for a, b in itertools.pairwise(dues)) and dues[-1] <= end
    for k, t in enumerate(dues):
        assert exact_n(start, stages, t) == pytest.approx(k, abs=1e-6), (k, t)  # N(due k) = k
        if k > 0:  # and not earlier: just before it fewer than k were due
            assert exact_n(start, stages, t - 1e-6) < k, (k, t)
    assert exact_n(start, stages, end) < total + 1  # the schedule holds every whole request, no more


def test_a_flat_stage_is_the_constant_rate():
    assert list(due_offsets(8.0, ((2.0, 8.0),), range(16))) == pytest.approx([k / 8 for k in range(16)], abs=1e-12)
    assert Plan(8.0, 2.0, 1, 1, start_rps=8.0, stages=((2.0, 8.0),)).total == Plan(8.0, 2.0, 1, 1).total == 16


def test_a_stretch_at_rate_zero_holds_no_request():
    # 10/s down to 0 over 1 s (5 requests, the 5th where the rate reaches 0), nothing for 1.5 s, then 0 up to 10/s
    dues = list(due_offsets(10.0, ((1.0, 0.0), (1.5, 0.0), (1.0, 10.0)), range(10)))
    assert dues[5] == pytest.approx(1.0)
    assert dues[6] == pytest.approx(2.5 + math.sqrt(2 / 10))  # N = 10 x² / 2 after the pause reaches 1
    assert not any(1.0 < t < 2.5 for t in dues)


@pytest.mark.parametrize("stride", [2, 3, 7], ids=["2-shares", "3-shares", "7-shares"])
def test_shares_split_one_global_numbering(stride):
    start, stages, total = SHAPES["up-then-down"]
    whole = list(due_offsets(start, stages, range(total)))
    parts = [list(due_offsets(start, stages, range(i, total, stride))) for i in range(stride)]
    assert sum(len(p) for p in parts) == total
    for i, part in enumerate(parts):
        assert part == pytest.approx(whole[i::stride], abs=1e-12)
    plans = [Plan(400.0, 4.0, 1, 1, i, stride, start, stages) for i in range(stride)]
    assert sum(p.mine for p in plans) == total


@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
def test_planned_is_the_integral_of_each_second(shape):
    start, stages, total = SHAPES[shape]
    seconds = math.ceil(sum(d for d, _ in stages))
    per = [planned(start, stages, s) for s in range(1, seconds + 1)]
    for s, p in enumerate(per, 1):
        assert p == pytest.approx(exact_n(start, stages, s) - exact_n(start, stages, s - 1), abs=1e-9)
    assert sum(per) == pytest.approx(cumulative(start, stages, math.inf)) and math.floor(sum(per) + 1e-9) == total
    assert planned(start, [LoadStage(durationS=d, targetRps=r) for d, r in stages], 1) == per[0]  # contract stages


def test_the_generator_paces_a_ramp_on_virtual_time():
    # 50 -> 400 -> 50 req/s over 4 s: every second's sends are the requests due in it, none early or late
    start, stages, total = SHAPES["up-then-down"]
    clock, sends = FakeClock(), list[float]()

    async def send(k: int) -> str | None:
        sends.append(clock.monotonic())
        return None

    plan = Plan(400.0, 4.0, 5, 400, start_rps=start, stages=stages)
    tally, samples, gen = run(plan, send, clock)
    assert tally.sent == tally.ok == total and tally.dropped == 0
    due = [gen.t0 + d for d in due_offsets(start, stages, range(total))]
    assert all(d <= at <= d + TICK + 1e-9 for at, d in zip(sends, due, strict=True))
    for s in samples[:4]:
        assert abs(s.tally.sent - planned(start, stages, s.second)) <= 1, (s.second, s.tally.sent)


def test_request_numbers_reach_the_sender_once_each_across_shares():
    start, stages, total = SHAPES["steps"]
    seen: list[int] = []

    async def send(k: int) -> str | None:
        seen.append(k)
        return None

    for i in range(3):
        run(Plan(300.0, 4.001, 4, 300, i, 3, start, stages), send)
    assert sorted(seen) == list(range(total))


@pytest.mark.parametrize(("pattern", "n", "key"), [
    ("user-{n}", 17, "user-17"),
    ("{n%10}", 17, "7"),
    ("t{n%1}-{n}-{n%1000000}", 1_234_567, "t0-1234567-234567"),
    ("static", 5, "static"),
], ids=["n", "mod", "several", "literal"])
def test_route_key_fills_in_the_request_number(pattern, n, key):
    assert route_key(pattern, n) == key


@pytest.mark.parametrize("pattern", ["{x}", "{n%0}", "{n%1000001}", "{N}", "{ n}", "a{", "}b", "{n%}", "{{n}}"])
def test_route_key_refuses_anything_else_in_braces(pattern):
    with pytest.raises(ValueError):
        route_key_parts(pattern)
