"""The open-model generator on an asyncio loop whose timers run on a fake clock (in-process senders, no sleeping).

`on_virtual_time` makes every asyncio timer (the generator's pacing, the senders' sleeps, the drain's polls) fire
on FakeClock time: when nothing is ready, the loop moves the clock to the next timer instead of waiting for it.
Times are then exact, so the figures below follow from the generator's rules alone. Where a figure depends on the
order of two events, the numbers are picked so that no two fall at the same instant.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from multiprocessing import Pipe
from typing import Any

import pytest

from engine.clock import FakeClock
from engine.loadtest.generator import Generator, Plan, Sample, Tally
from engine.loadtest.manager import _SecondMerger
from engine.loadtest.worker import WorkerPool


class _VirtualSelector:
    """A selector that, instead of blocking until the next timer is due, advances the fake clock to it."""

    def __init__(self, clock: FakeClock) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = self._real.select(0)
        if not ready:
            if timeout is None:
                raise RuntimeError("nothing is ready and no timer is set: the run would wait forever")
            self._clock.advance(timeout)
        return ready

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is the fake clock's monotonic time."""

    def __init__(self, clock: FakeClock) -> None:
        self._fake = clock
        super().__init__(_VirtualSelector(clock))  # type: ignore[arg-type]

    def time(self) -> float:
        return self._fake.monotonic()


def on_virtual_time(clock: FakeClock, main: Coroutine[Any, Any, Any]) -> Any:
    """Run main to its end on a loop driven by clock."""
    loop = _VirtualLoop(clock)
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


def run(plan: Plan, send, clock: FakeClock | None = None, *, stop_after=None, **kw):
    """Run one plan on virtual time; the merged tally, the samples and the generator."""
    clock = clock or FakeClock()
    samples: list[Sample] = []
    gen = Generator(plan, send, clock.monotonic, samples.append, **kw)

    async def main() -> None:
        if stop_after is not None:
            asyncio.get_running_loop().call_later(stop_after, gen.stop)
        await gen.run()

    on_virtual_time(clock, main())
    total = Tally()
    for s in samples:
        total.merge(s.tally)
    return total, samples, gen


def sleeper(seconds: float, log: list[float] | None = None, clock: FakeClock | None = None):
    """A sender that takes `seconds`; with log and clock, it notes when each request went out."""

    async def send(k: int) -> str | None:
        if log is not None and clock is not None:
            log.append(clock.monotonic())
        await asyncio.sleep(seconds)
        return None

    return send


TICK = 0.001  # the dispatcher's shortest sleep: a request may go out this late, never early
POLL = 0.01  # how often the drain looks whether the run's requests are done


def test_each_request_goes_out_at_its_due_time_and_per_second_samples_add_up_to_the_totals():
    clock, sends = FakeClock(), list[float]()
    total, samples, gen = run(Plan(rate=200, duration_s=2, users=10, backlog=200), sleeper(0.002, sends, clock),
                              clock)
    assert (total.sent, total.ok, total.failed, total.dropped) == (400, 400, 0, 0)
    assert [s.second for s in samples] == list(range(1, len(samples) + 1))
    assert [s.tally.sent for s in samples[:2]] == [200, 200]  # k = 0..199 are due in second 1, 200..399 in 2
    due = [gen.t0 + k * (1.0 / 200) for k in range(400)]
    early = [(k, at - d) for k, (at, d) in enumerate(zip(sends, due, strict=True)) if at < d]
    late = [(k, at - d) for k, (at, d) in enumerate(zip(sends, due, strict=True)) if at > d + TICK + 1e-9]
    assert (early, late) == ([], [])  # the run spans its two seconds: none ahead of schedule, none behind it
    last_outcome = sends[-1] + 0.002
    assert gen.ended_at is not None and last_outcome <= gen.ended_at <= last_outcome + POLL + 1e-9
    p99 = total.uncorrected.percentiles([99])[99]
    assert p99 is not None and 1_999 <= p99 <= 2_000  # µs: the 2 ms sleep exactly (float time may shave 1 µs)


def test_busy_users_fill_the_backlog_and_the_overflow_is_dropped_not_skipped():
    # 64 requests due 1/64 s apart; one user takes S (about 50 ms, in 2^-16 s so no completion meets a due time)
    # per request; the backlog holds 10. Request 0 takes the free user. The user then frees every S, and each
    # freed place is taken by the next due request; when the schedule ends (at 63/64 s) the backlog is full, and
    # the drain sends it. So sent = 1 + backlog + completions before 63/64 s (floor(63/64 / S) = 19).
    s = 3277 / 65536
    freed = int((63 / 64) / s)
    assert freed == 19
    total, samples, gen = run(Plan(rate=64, duration_s=1, users=1, backlog=10), sleeper(s))
    assert total.sent + total.dropped == 64 == gen.dispatched  # every scheduled request is accounted for
    assert (total.sent, total.ok, total.dropped) == (1 + 10 + freed, 1 + 10 + freed, 64 - 1 - 10 - freed)
    assert samples[0].tally.dropped == total.dropped  # all dropped when due, in second 1; the drain sent the rest


def test_at_the_drain_deadline_the_backlog_is_dropped_and_the_request_in_flight_fails_as_cancelled():
    # 8 requests due 1/8 s apart, one user at 0.3 s each, backlog 3, drain 0.5 s after the last due (7/8 s):
    # sends at 0, .3, .6, .9 (second 1) and 1.2 (second 2); 6 and 7 find the backlog full (dropped in second 1);
    # at the deadline (1.375 s) request 5 still waits (dropped) and request 4 is still out (cancelled, failed).
    total, samples, gen = run(Plan(rate=8, duration_s=1, users=1, backlog=3), sleeper(0.3), drain_s=0.5)
    assert [(s.second, s.tally.sent, s.tally.ok, s.tally.failed, s.tally.dropped) for s in samples] == [
        (1, 4, 3, 0, 2), (2, 1, 1, 1, 1)]
    assert (total.sent, total.ok, total.failed, total.dropped) == (5, 4, 1, 3)
    assert total.errors == {"cancelled": 1} and gen.backlog == 0 and gen.in_flight == 0
    assert gen.ended_at is not None and gen.t0 + 7 / 8 + 0.5 <= gen.ended_at <= gen.t0 + 7 / 8 + 0.5 + POLL + TICK


def test_corrected_latency_shows_a_stall_that_the_uncorrected_hides():
    clock = FakeClock()
    stall: dict[str, float] = {}

    async def send(k: int) -> str | None:
        now = clock.monotonic()
        if "at" not in stall:
            stall["at"] = now + 0.5
        if stall["at"] <= now < stall["at"] + 1.0:
            await asyncio.sleep(stall["at"] + 1.0 - now)  # like a GC pause: everything in it waits
        else:
            await asyncio.sleep(0.001)
        return None

    total, _, _ = run(Plan(rate=100, duration_s=3, users=2, backlog=100), send, clock)
    assert (total.sent, total.dropped) == (300, 0)
    corrected = total.corrected.percentiles([50, 99])
    uncorrected = total.uncorrected.percentiles([50, 99])
    assert corrected[99] is not None and corrected[99] >= 500_000
    assert uncorrected[99] is not None and uncorrected[99] < 500_000
    assert total.uncorrected.max >= 900_000  # the two requests caught in the stall saw it


def test_stop_ends_a_long_run_at_once_sends_nothing_after_it_and_counts_what_it_cut_off():
    # 100/s for 60 s with two users stuck for 5 s: requests 0 and 1 go out, 2..30 (due by the stop at 0.305 s)
    # wait in the backlog. The dispatcher notices the stop at its next wake (0.31 s), the backlog is dropped and
    # the two in flight get the 0.3 s grace, then are cancelled.
    clock, sends = FakeClock(), list[float]()
    stop_at = 0.305
    total, _, gen = run(Plan(rate=100, duration_s=60, users=2, backlog=100), sleeper(5.0, sends, clock), clock,
                        stop_after=stop_at)
    assert gen.stopping and gen.ended_at is not None
    assert gen.ended_at <= gen.t0 + stop_at + 0.01 + 0.3 + POLL + 1e-9  # one interval, the grace, one poll; not 60 s
    assert [round(at - gen.t0, 6) for at in sends] == [0.0, 0.01]  # nothing went out after the stop
    assert (total.sent, total.failed, total.errors, total.dropped) == (2, 2, {"cancelled": 2}, 29)
    assert gen.dispatched == 31 == total.sent + total.dropped


def test_sender_errors_are_counted_by_kind():
    calls = {"n": 0}

    async def send(k: int) -> str | None:
        calls["n"] += 1
        if calls["n"] % 4 == 0:
            raise ConnectionResetError("boom")
        return "http_503" if calls["n"] % 4 == 1 else None

    total, _, _ = run(Plan(rate=200, duration_s=0.5, users=4, backlog=100), send)
    assert total.sent == total.ok + total.failed == 100
    assert total.errors == {"http_503": 25, "ConnectionResetError": 25}


def test_shares_with_a_common_start_split_the_schedule_exactly():
    clock = FakeClock()
    samples: list[Sample] = []
    sends: list[float] = []

    async def main() -> list[Generator]:
        t0 = clock.monotonic() + 0.05
        gens = [Generator(Plan(300, 1, 5, 300, offset=i, stride=3), sleeper(0.001, sends, clock), clock.monotonic,
                          samples.append) for i in range(3)]
        assert sum(g.plan.mine for g in gens) == 300
        await asyncio.gather(*(g.run(t0) for g in gens))
        return gens

    gens = on_virtual_time(clock, main())
    assert sum(s.tally.sent for s in samples) == 300
    assert [g.dispatched for g in gens] == [100, 100, 100]
    due = [gens[0].t0 + k * (1.0 / 300) for k in range(300)]
    assert all(d <= at <= d + TICK + 1e-9 for at, d in zip(sorted(sends), due, strict=True))  # one schedule


def test_outcomes_count_in_the_second_they_happened_however_late_the_ticker_wakes():
    samples: list[Sample] = []
    gen = Generator(Plan(100, 3, 1, 1), sleeper(0), FakeClock().monotonic, samples.append)
    gen.t0 = 500.0
    for when in (500.2, 500.99, 501.01, 501.5):  # the loop was busy: second 1 is not handed over until 501.6
        gen._at(when).sent += 1
    gen._emit()
    gen._at(501.7).ok += 1
    gen._at(502.4).ok += 1  # after a wake more than a second late
    gen._emit()
    gen._emit(final=True)  # the run's end: what is held goes out, the last second partial
    assert [(s.second, s.tally.sent, s.tally.ok) for s in samples] == [(1, 2, 0), (2, 2, 1), (3, 0, 1)]


def test_the_drops_of_worker_processes_are_added_to_the_engines_second_by_second():
    # shares 1 and 2 report as worker processes do: a tally per second over a pipe, read by WorkerPool
    emitted: list[Sample] = []
    merger = _SecondMerger(3, emitted.append)

    def tally(sent: int, dropped: int) -> Tally:
        t = Tally(sent=sent, ok=sent, dropped=dropped)
        t.corrected.record(1000)
        t.uncorrected.record(1000)
        return t

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ready, done = loop.create_future(), loop.create_future()
        engine_end, worker_end = Pipe()
        try:
            def from_worker(share: int, message: tuple[Any, ...]) -> None:
                worker_end.send(message)
                WorkerPool._on_message(share, engine_end, ready, done, merger.add, merger.done)

            merger.add(0, Sample(1, tally(10, 3)))
            from_worker(1, ("second", 1, tally(9, 4).to_wire()))
            assert emitted == []  # share 2 has not reported second 1 yet
            from_worker(2, ("second", 1, tally(8, 5).to_wire()))
            from_worker(2, ("second", 2, tally(1, 7).to_wire()))
            merger.done(0)
            from_worker(1, ("done",))
            from_worker(2, ("done",))
        finally:
            engine_end.close()
            worker_end.close()

    asyncio.run(main())
    assert [(s.second, s.tally.sent, s.tally.dropped, s.tally.corrected.count) for s in emitted] == [
        (1, 27, 12, 3), (2, 1, 7, 1)]


@pytest.mark.parametrize("plan", [Plan(0, 1, 1, 1), Plan(10, 0, 1, 1), Plan(10, 1, 0, 1), Plan(10, 1, 1, -1)],
                         ids=["rate", "duration", "users", "backlog"])
def test_impossible_plans_are_refused(plan):
    with pytest.raises(ValueError):
        Generator(plan, sleeper(0), FakeClock().monotonic, lambda s: None)
