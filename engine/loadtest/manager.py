"""Load tests: one run at a time, through the router, with live per-second results in PostgreSQL.

The API thread calls start()/stop()/status(); the run itself lives on the engine loop. Share 0 of
the schedule is generated in the engine (through the shared router: balancer, breakers, retries,
metrics); when the rate is more than one process holds, worker processes take the other shares
(engine.loadtest.worker) and their per-second tallies are merged here, second by second.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contract.errors import Conflict, ValidationFailed
from contract.events import LoadTestProgress, LoadTestSampleEvent
from contract.loadtest import LoadTestOut, LoadTestStatus
from db.loadtests import SUMMARY_FIELDS, load_test_out
from db.models import LoadTest
from engine.clock import Clock
from engine.fleet.registry import Registry
from engine.loadtest.generator import Generator, Plan, Sample, Tally
from engine.loadtest.results import latency_pair
from engine.loadtest.sender import router_sender
from engine.loadtest.worker import WorkerPool
from engine.store.logs import event_logger
from engine.store.writer import BatchWriter
from engine.traffic.router import Router

__all__ = ["LoadTestLimits", "LoadTestManager", "LoadTestRequest"]

log = event_logger("loadtest")


@dataclass(frozen=True)
class LoadTestLimits:
    """Bounds a run must stay within, and how the work is split."""

    max_rps: float = 20_000.0
    max_duration_s: float = 3600.0
    max_users: int = 1000
    backlog_s: float = 1.0
    process_rps: float = 5000.0
    drain_s: float = 10.0
    uvloop: bool = True  # worker processes run on uvloop when it is installed


@dataclass(frozen=True)
class LoadTestRequest:
    """A validated start request."""

    users: int
    rate: float
    duration_s: float
    service: str
    path: str = "/"
    method: str = "GET"


@dataclass
class _Run:
    """The live state of one run (touched on the engine loop; read by the API thread as a snapshot)."""

    id: int
    request: LoadTestRequest
    started_at: datetime
    workers: int
    status: LoadTestStatus = LoadTestStatus.RUNNING
    ended_at: datetime | None = None
    total: Tally = field(default_factory=Tally)
    elapsed_s: float = 0.0
    generator: Generator | None = None
    stop: Callable[[], object] | None = None
    done: threading.Event = field(default_factory=threading.Event)


class LoadTestManager:
    """Starts, stops and reports load tests; at most one runs at a time."""

    def __init__(
        self,
        registry: Registry,
        router: Router,
        sessions: sessionmaker[Session],
        writer: BatchWriter,
        clock: Clock,
        run_soon: Callable[[Any], Any],
        limits: LoadTestLimits | None = None,
        *,
        cpus: int | None = None,
        engine_id: uuid.UUID | None = None,
    ) -> None:
        self._registry = registry
        self._engine_id = engine_id  # written on each row: a start elsewhere leaves a live engine's rows alone
        self._router = router
        self._sessions = sessions
        self._writer = writer
        self._clock = clock
        self._run_soon = run_soon
        self.limits = limits or LoadTestLimits()
        self._cpus = cpus or os.cpu_count() or 1
        self._lock = threading.Lock()
        self._run: _Run | None = None

    # -- API thread ---------------------------------------------------------------------------

    def validate(self, users: int, rate: float, duration_s: float, service: str | None, path: str,
                 method: str) -> LoadTestRequest:
        """Check the bounds and the target; ValidationFailed names the field and the limit."""
        lim = self.limits
        problems = []
        if rate > lim.max_rps:
            problems.append({"field": "requestsPerSecond", "message": f"at most {lim.max_rps:g} (MAX_RPS)"})
        if duration_s > lim.max_duration_s:
            problems.append({"field": "duration", "message": f"at most {lim.max_duration_s:g} s (MAX_DURATION)"})
        if users > lim.max_users:
            problems.append({"field": "concurrentUsers", "message": f"at most {lim.max_users} (MAX_USERS)"})
        if service is None:
            services = self._registry.services()
            if len(services) != 1:
                problems.append({"field": "targetService",
                                 "message": "required unless exactly one service is registered"})
            else:
                service = services[0].name
        elif self._registry.by_name(service) is None:
            problems.append({"field": "targetService", "message": f"no registered service named {service!r}"})
        if problems:
            raise ValidationFailed(problems)
        assert service is not None
        return LoadTestRequest(users, rate, duration_s, service, path, method.upper())

    def start(self, req: LoadTestRequest) -> LoadTestOut:
        """Create the row and launch the run; Conflict while another runs."""
        with self._lock:
            if self._run is not None and self._run.status == LoadTestStatus.RUNNING:
                raise Conflict(f"load test {self._run.id} is running; stop it first")
            self._run_soon(asyncio.sleep(0))  # Unavailable (503) before any row exists if the loop is down
            workers = self._shares(req)
            now = self._clock.now()
            with self._sessions.begin() as session:
                row = LoadTest(
                    status=LoadTestStatus.RUNNING, concurrent_users=req.users, requests_per_second=req.rate,
                    duration_s=req.duration_s, target_service=req.service, path=req.path, method=req.method,
                    workers=workers, started_at=now, summary={}, engine_id=self._engine_id,
                )
                session.add(row)
                session.flush()
                run = _Run(row.id, req, now, workers)
            self._run = run
        self._run_soon(self._execute(run))
        log.info("load test %d started: %g req/s for %g s, %d users, %s %s%s", run.id, req.rate, req.duration_s,
                 req.users, req.method, req.service, req.path,
                 extra={"meta": {"loadTestId": run.id, "workers": workers}})
        return self.status()

    def stop(self, timeout_s: float = 1.0) -> LoadTestOut:
        """Stop the running test (it ends within timeout_s); Conflict when none runs."""
        run = self._run
        if run is None or run.status != LoadTestStatus.RUNNING:
            raise Conflict("no load test is running")
        self._run_soon(self._stop(run))
        run.done.wait(timeout_s)
        self._writer.flush()
        return self.status()

    def status(self) -> LoadTestOut:
        """The live run, or the last one this engine ran; the latest stored one otherwise; idle when none."""
        run = self._run
        if run is None:
            with self._sessions() as session:
                row = session.scalars(select(LoadTest).order_by(LoadTest.id.desc()).limit(1)).first()
                return LoadTestOut(status=LoadTestStatus.IDLE) if row is None else load_test_out(row)
        return self._status_of(run)

    # -- engine loop --------------------------------------------------------------------------

    @staticmethod
    async def _stop(run: _Run) -> None:
        if run.stop is not None:
            run.stop()

    async def shutdown(self) -> None:
        """The engine is stopping: end a running test (on the engine loop), bounded."""
        run = self._run
        if run is None or run.status != LoadTestStatus.RUNNING:
            return
        await self._stop(run)
        await asyncio.to_thread(run.done.wait, 2.0)

    def _shares(self, req: LoadTestRequest) -> int:
        return max(1, min(self._cpus, req.users, math.ceil(req.rate / self.limits.process_rps)))

    def _plan(self, req: LoadTestRequest, offset: int, stride: int) -> Plan:
        users = len(range(offset, req.users, stride))
        backlog = max(1, round(req.rate * self.limits.backlog_s / stride))
        return Plan(req.rate, req.duration_s, users, backlog, offset, stride)

    async def _execute(self, run: _Run) -> None:
        req = run.request
        spec = self._registry.by_name(req.service)
        if spec is None:
            self._finish(run, LoadTestStatus.FAILED)
            return
        merger = _SecondMerger(run.workers, lambda s: self._on_second(run, s))
        pool = WorkerPool(self._router, spec, req.method, req.path, run.workers,
                          lambda share, shares: self._plan(req, share, shares), self.limits.drain_s,
                          uvloop=self.limits.uvloop)
        send = router_sender(self._router, req.service, req.method, req.path)
        gen = Generator(self._plan(req, 0, run.workers), send, self._clock.monotonic, lambda s: merger.add(0, s),
                        drain_s=self.limits.drain_s)
        run.generator = gen

        def stop() -> None:
            gen.stop()
            pool.stop()

        run.stop = stop
        status = LoadTestStatus.FAILED
        try:
            t0 = await pool.start(merger.add, merger.done, self._clock.monotonic)
            await gen.run(t0)
            merger.done(0)
            await pool.wait(0.5 if gen.stopping else self.limits.drain_s + 2.0)
            status = LoadTestStatus.STOPPED if gen.stopping else LoadTestStatus.COMPLETED
        except asyncio.CancelledError:
            status = LoadTestStatus.STOPPED
            raise
        except Exception as exc:
            log.error("load test %d failed: %s", run.id, exc, extra={"meta": {"loadTestId": run.id}})
        finally:
            pool.stop()
            pool.close()
            merger.flush_all()
            run.elapsed_s = min(req.duration_s, (gen.ended_at or self._clock.monotonic()) - gen.t0)
            self._finish(run, status)

    def _on_second(self, run: _Run, sample: Sample) -> None:
        run.total.merge(sample.tally)
        gen = run.generator
        if gen is not None and gen.t0:
            run.elapsed_s = min(run.request.duration_s, self._clock.monotonic() - gen.t0)
        t = sample.tally
        self._writer.submit(LoadTestSampleEvent(
            run.id, sample.second, self._clock.now(), t.sent, t.ok, t.failed, t.dropped, dict(t.errors),
            latency_pair(t.corrected, t.uncorrected).model_dump(mode="json"),
        ))
        self._writer.submit(self._progress(run))

    def _finish(self, run: _Run, status: LoadTestStatus) -> None:
        run.status = status
        run.ended_at = self._clock.now()
        self._writer.submit(self._progress(run))
        run.done.set()
        total = run.total
        log.info("load test %d %s: %d sent, %d ok, %d failed, %d dropped", run.id, status, total.sent, total.ok,
                 total.failed, total.dropped, extra={"meta": {"loadTestId": run.id, "status": status}})

    def _progress(self, run: _Run) -> LoadTestProgress:
        t = run.total
        summary = self._status_of(run).model_dump(mode="json", include=set(SUMMARY_FIELDS))
        return LoadTestProgress(run.id, run.status, t.ok + t.failed, t.ok, t.failed, t.dropped, run.ended_at, summary)

    def _status_of(self, run: _Run) -> LoadTestOut:
        req, t = run.request, run.total
        gen = run.generator
        live = run.status == LoadTestStatus.RUNNING and gen is not None
        achieved = t.sent / run.elapsed_s if run.elapsed_s > 0 else None
        return LoadTestOut(
            id=run.id, status=run.status, concurrentUsers=req.users, requestsPerSecond=req.rate,
            duration=req.duration_s, targetService=req.service, path=req.path, method=req.method,
            workers=run.workers, totalRequests=t.ok + t.failed, successfulRequests=t.ok, failedRequests=t.failed,
            droppedRequests=t.dropped, startTime=run.started_at.isoformat(),
            endTime=run.ended_at.isoformat() if run.ended_at else None,
            inFlight=gen.in_flight if live and gen else 0, backlog=gen.backlog if live and gen else 0,
            achievedRps=None if achieved is None else round(achieved, 2),
            shortfallPercent=None if achieved is None else round(max(0.0, 100.0 * (1 - achieved / req.rate)), 2),
            elapsedSeconds=round(run.elapsed_s, 3), sent=t.sent, errors=dict(t.errors),
            latency=latency_pair(t.corrected, t.uncorrected),
        )


class _SecondMerger:
    """Merges the shares' tallies of each second and hands on every second once all shares have it."""

    def __init__(self, shares: int, emit: Callable[[Sample], None]) -> None:
        self._emit = emit
        self._last = [0] * shares
        self._done = [False] * shares
        self._pending: dict[int, Tally] = {}

    def add(self, share: int, sample: Sample) -> None:
        """One share's second."""
        self._pending.setdefault(sample.second, Tally()).merge(sample.tally)
        self._last[share] = max(self._last[share], sample.second)
        self._release()

    def done(self, share: int) -> None:
        """A share sends no more seconds."""
        self._done[share] = True
        self._release()

    def _release(self) -> None:
        ready = min((last for last, done in zip(self._last, self._done, strict=True) if not done), default=None)
        for second in sorted(self._pending):
            if ready is not None and second > ready:
                break
            self._emit(Sample(second, self._pending.pop(second)))

    def flush_all(self) -> None:
        """Hand on whatever is left (the run ended)."""
        for second in sorted(self._pending):
            self._emit(Sample(second, self._pending.pop(second)))
