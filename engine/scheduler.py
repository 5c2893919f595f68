"""APScheduler jobs: explicit ids, replace_existing, one instance at a time, coalesced."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

__all__ = ["Job", "build_scheduler"]

Job = tuple[str, Callable[[], Awaitable[object]], float]


def build_scheduler(jobs: list[Job]) -> AsyncIOScheduler:
    """A scheduler (not started) with each (id, coroutine function, interval seconds) as an interval job.

    It must be started from inside the asyncio loop it will run on.
    """
    scheduler = AsyncIOScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    )
    for job_id, func, seconds in jobs:
        # first run at once, so a fresh start shows a status within a second, not an interval
        scheduler.add_job(
            func, "interval", seconds=seconds, id=job_id, name=job_id, replace_existing=True,
            next_run_time=datetime.now(UTC),
        )
    return scheduler
