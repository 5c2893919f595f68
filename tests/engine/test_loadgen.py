"""The open-model generator on a real asyncio loop with in-process senders (each test runs a few seconds)."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine.loadtest.generator import Generator, Plan, Sample, Tally


def run(plan: Plan, send, *, t0=None, stop_after=None, **kw) -> tuple[Tally, list[Sample], Generator, float]:
    samples: list[Sample] = []
    gen = Generator(plan, send, time.monotonic, samples.append, **kw)

    async def main() -> float:
        began = time.monotonic()
        if stop_after is not None:
            asyncio.get_running_loop().call_later(stop_after, gen.stop)
        await gen.run(t0)
        return time.monotonic() - began

    took = asyncio.run(main())
    total = Tally()
    for s in samples:
        total.merge(s.tally)
    return total, samples, gen, took


def sleeper(seconds: float):
    async def send() -> str | None:
        await asyncio.sleep(seconds)
        return None

    return send


def test_the_rate_is_held_and_per_second_samples_add_up_to_the_totals():
    total, samples, _, took = run(Plan(rate=200, duration_s=2, users=10, backlog=200), sleeper(0.002))
    assert (total.sent, total.ok, total.failed, total.dropped) == (400, 400, 0, 0)
    assert [s.second for s in samples] == list(range(1, len(samples) + 1))
    assert 190 <= samples[0].tally.sent <= 201 and 190 <= samples[1].tally.sent <= 201  # sent when due
    assert 1.99 <= took < 2.5
    p99 = total.uncorrected.percentiles([99])[99]
    assert p99 is not None and 2_000 <= p99 < 50_000  # µs: the 2 ms sleep, plus loop overhead


def test_busy_users_fill_the_backlog_and_the_overflow_is_dropped_not_skipped():
    # one user at 50 ms per request holds 20/s; 100/s are due: 10 wait, the rest are dropped
    total, _, _, _ = run(Plan(rate=100, duration_s=1, users=1, backlog=10), sleeper(0.05))
    assert total.sent + total.dropped == 100  # every scheduled request is accounted for
    assert total.sent == total.ok and 25 <= total.sent <= 35 and total.dropped >= 65


def test_corrected_latency_shows_a_stall_that_the_uncorrected_hides():
    stall: dict[str, float] = {}

    async def send() -> str | None:
        now = time.monotonic()
        if "at" not in stall:
            stall["at"] = now + 0.5
        if stall["at"] <= now < stall["at"] + 1.0:
            await asyncio.sleep(stall["at"] + 1.0 - now)  # like a GC pause: everything in it waits
        else:
            await asyncio.sleep(0.001)
        return None

    total, _, _, _ = run(Plan(rate=100, duration_s=3, users=2, backlog=100), send)
    assert (total.sent, total.dropped) == (300, 0)
    corrected = total.corrected.percentiles([50, 99])
    uncorrected = total.uncorrected.percentiles([50, 99])
    assert corrected[99] is not None and corrected[99] >= 500_000
    assert uncorrected[99] is not None and uncorrected[99] < 500_000
    assert total.uncorrected.max >= 900_000  # the two requests caught in the stall saw it


def test_stop_ends_a_long_run_quickly_and_counts_what_it_cut_off():
    total, _, gen, took = run(Plan(rate=100, duration_s=60, users=2, backlog=100), sleeper(5.0), stop_after=0.3)
    assert took < 1.0 and gen.stopping
    assert total.sent == 2 and total.errors == {"cancelled": 2} and total.failed == 2
    assert total.dropped >= 25  # due while both users were busy, never sent


def test_sender_errors_are_counted_by_kind():
    calls = {"n": 0}

    async def send() -> str | None:
        calls["n"] += 1
        if calls["n"] % 4 == 0:
            raise ConnectionResetError("boom")
        return "http_503" if calls["n"] % 4 == 1 else None

    total, _, _, _ = run(Plan(rate=200, duration_s=0.5, users=4, backlog=100), send)
    assert total.sent == total.ok + total.failed == 100
    assert total.errors == {"http_503": 25, "ConnectionResetError": 25}


def test_shares_with_a_common_start_split_the_schedule_exactly():
    samples: list[Sample] = []

    async def main() -> None:
        t0 = time.monotonic() + 0.05
        gens = [Generator(Plan(300, 1, 5, 300, offset=i, stride=3), sleeper(0.001), time.monotonic, samples.append)
                for i in range(3)]
        assert sum(g.plan.mine for g in gens) == 300
        await asyncio.gather(*(g.run(t0) for g in gens))

    asyncio.run(main())
    assert sum(s.tally.sent for s in samples) == 300


def test_outcomes_count_in_the_second_they_happened_however_late_the_ticker_wakes():
    samples: list[Sample] = []
    gen = Generator(Plan(100, 3, 1, 1), sleeper(0), time.monotonic, samples.append)
    gen.t0 = 500.0
    for when in (500.2, 500.99, 501.01, 501.5):  # the loop was busy: second 1 is not handed over until 501.6
        gen._at(when).sent += 1
    gen._emit()
    gen._at(501.7).ok += 1
    gen._at(502.4).ok += 1  # after a wake more than a second late
    gen._emit()
    gen._emit(final=True)  # the run's end: what is held goes out, the last second partial
    assert [(s.second, s.tally.sent, s.tally.ok) for s in samples] == [(1, 2, 0), (2, 2, 1), (3, 0, 1)]


@pytest.mark.parametrize("plan", [Plan(0, 1, 1, 1), Plan(10, 0, 1, 1), Plan(10, 1, 0, 1), Plan(10, 1, 1, -1)],
                         ids=["rate", "duration", "users", "backlog"])
def test_impossible_plans_are_refused(plan):
    with pytest.raises(ValueError):
        Generator(plan, sleeper(0), time.monotonic, lambda s: None)
