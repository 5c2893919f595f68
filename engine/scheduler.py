"""APScheduler jobs: explicit ids, replace_existing, one instance at a time, coalesced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from functools import wraps

from apscheduler.schedulers.asyncio import AsyncIOScheduler

__all__ = ["Job", "JobScheduler", "Observe", "build_scheduler", "observed"]

Job = tuple[str, Callable[[], Awaitable[object]], float, float]
Observe = Callable[[str, float, bool], None]  # (job id, seconds, ok)


def observed(
    job_id: str, func: Callable[[], Awaitable[object]], observe: Observe,
    timer: Callable[[], float] = time.perf_counter,
) -> Callable[[], Coroutine[None, None, object]]:
    """func, telling observe how long each run took and whether it ended without an exception.

    The exception still propagates (APScheduler logs it as before); a run cancelled by the engine's stop is
    not a failure and is not observed.
    """

    @wraps(func)
    async def run() -> object:
        began = timer()
        try:
            result = await func()
        except asyncio.CancelledError:
            raise
        except Exception:
            observe(job_id, timer() - began, False)
            raise
        observe(job_id, timer() - began, True)
        return result

    return run


def build_scheduler(
    jobs: list[Job], observe: Observe | None = None, *, now: datetime | None = None,
    timer: Callable[[], float] = time.perf_counter,
) -> AsyncIOScheduler:
    """A scheduler (not started): each (id, coroutine function, interval s, first-run delay s) an interval job.

    It must be started from inside the asyncio loop it will run on. The delays keep jobs apart: a round
    of checks must not share the loop with a round of scrapes, or each would time the other's work.
    Each first run is its delay after `now` (the current time by default). `observe`, when given, is told
    each run's job id, duration in seconds (on `timer`) and success.
    """
    scheduler = AsyncIOScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    )
    now = now or datetime.now(UTC)
    for job_id, func, seconds, delay in jobs:
        scheduler.add_job(
            func if observe is None else observed(job_id, func, observe, timer), "interval", seconds=seconds,
            id=job_id, name=job_id, replace_existing=True, next_run_time=now + timedelta(seconds=delay),
        )
    return scheduler


class JobScheduler:
    """The engine's interval jobs, declared once: start() inside the loop they run on, shutdown() at stop."""

    def __init__(self, jobs: list[Job], observe: Observe | None = None) -> None:
        self.jobs = jobs
        self._observe = observe
        self._scheduler: AsyncIOScheduler | None = None

    def start(self) -> None:
        """Schedule every job, each first run its delay from now (call from inside the running loop)."""
        scheduler = build_scheduler(self.jobs, self._observe)
        scheduler.start()
        self._scheduler = scheduler

    def shutdown(self) -> None:
        """Stop scheduling new runs (runs in progress are the caller's to cancel); nothing when not started."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
