"""The scheduler keeps checks and scrapes apart and runs each job one at a time."""

from __future__ import annotations

from datetime import UTC, datetime


async def job():
    return None


def test_jobs_start_with_their_delays_and_never_overlap_themselves():
    from engine.scheduler import build_scheduler

    before = datetime.now(UTC)
    scheduler = build_scheduler([("a", job, 5.0, 0.0), ("b", job, 5.0, 2.5)])
    jobs = {j.id: j for j in scheduler.get_jobs()}
    a, b = jobs["a"].next_run_time, jobs["b"].next_run_time
    assert 2.4 < (b - a).total_seconds() < 2.6 and (a - before).total_seconds() < 1
    assert scheduler._job_defaults["max_instances"] == 1 and scheduler._job_defaults["coalesce"] is True
