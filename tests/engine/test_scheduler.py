"""The scheduler keeps checks and scrapes apart and runs each job one at a time."""

from __future__ import annotations

import asyncio
import inspect
import logging
from datetime import UTC, datetime, timedelta

import pytest

from engine.clock import FakeClock


async def job():
    return None


def test_jobs_start_with_their_delays_and_never_overlap_themselves():
    from engine.scheduler import build_scheduler

    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    scheduler = build_scheduler([("a", job, 5.0, 0.0), ("b", job, 5.0, 2.5)], now=now)
    jobs = {j.id: j for j in scheduler.get_jobs()}
    assert (jobs["a"].next_run_time, jobs["b"].next_run_time) == (now, now + timedelta(seconds=2.5))
    assert {j: jobs[j].trigger.interval for j in jobs} == {"a": timedelta(seconds=5), "b": timedelta(seconds=5)}
    assert scheduler._job_defaults["max_instances"] == 1 and scheduler._job_defaults["coalesce"] is True


def test_observed_reports_duration_and_success_and_passes_the_result_on():
    from engine.scheduler import observed

    seen = []
    ticks = iter([10.0, 10.25])

    async def work():
        return 42

    wrapped = observed("a", work, lambda *args: seen.append(args), timer=lambda: next(ticks))
    assert asyncio.run(wrapped()) == 42
    assert seen == [("a", 0.25, True)]
    assert inspect.unwrap(wrapped) is work and wrapped.__name__ == "work"


def test_observed_counts_a_failure_and_still_raises():
    from engine.scheduler import observed

    seen = []
    ticks = iter([1.0, 4.0])

    async def broken():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(observed("b", broken, lambda *args: seen.append(args), timer=lambda: next(ticks))())
    assert seen == [("b", 3.0, False)]


def test_a_cancelled_run_is_not_a_failure():
    from engine.scheduler import observed

    seen = []

    async def main():
        task = asyncio.ensure_future(observed("c", lambda: asyncio.sleep(10), lambda *a: seen.append(a))())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == []


def test_scheduled_jobs_are_observed_and_a_failing_job_is_still_logged(caplog):
    from engine.scheduler import build_scheduler

    seen = []
    clock = FakeClock()

    async def ok():
        clock.advance(0.25)  # the job's run takes 0.25 s on the timer

    async def broken():
        raise RuntimeError("job broke")

    async def main():
        both = asyncio.Event()

        def observe(job, seconds, success):
            seen.append((job, seconds, success))
            if {j for j, _, _ in seen} == {"ok", "broken"}:
                both.set()

        scheduler = build_scheduler([("ok", ok, 60.0, 0.0), ("broken", broken, 60.0, 0.0)], observe=observe,
                                    timer=clock.monotonic)
        scheduler.start()
        try:
            await asyncio.wait_for(both.wait(), 5)
            await asyncio.sleep(0.05)  # APScheduler logs the exception after the job's coroutine ends
        finally:
            scheduler.shutdown(wait=False)

    with caplog.at_level(logging.ERROR, logger="apscheduler"):
        asyncio.run(main())
    assert sorted(seen) == [("broken", 0.0, False), ("ok", 0.25, True)]  # each once, timed on the timer
    assert any("broken" in r.getMessage() and r.exc_info and "job broke" in str(r.exc_info[1])
               for r in caplog.records)
