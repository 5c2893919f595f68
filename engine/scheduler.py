"""APScheduler jobs: explicit ids, replace_existing, one instance at a time, coalesced."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

__all__ = ["Job", "build_scheduler"]

Job = tuple[str, Callable[[], Awaitable[object]], float, float]


def build_scheduler(jobs: list[Job]) -> AsyncIOScheduler:
    """A scheduler (not started): each (id, coroutine function, interval s, first-run delay s) an interval job.

    It must be started from inside the asyncio loop it will run on. The delays keep jobs apart: a round
    of checks must not share the loop with a round of scrapes, or each would time the other's work.
    """
    scheduler = AsyncIOScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    )
    now = datetime.now(UTC)
    for job_id, func, seconds, delay in jobs:
        scheduler.add_job(
            func, "interval", seconds=seconds, id=job_id, name=job_id, replace_existing=True,
            next_run_time=now + timedelta(seconds=delay),
        )
    return scheduler
