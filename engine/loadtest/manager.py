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

from contract.errors import Conflict, NotFound, ValidationFailed
from contract.events import LoadTestProgress, LoadTestSampleEvent
from contract.loadtest import LoadRequest, LoadStage, LoadTestOut, LoadTestStart, LoadTestStatus
from db.loadtests import SUMMARY_FIELDS, load_test_out, shape_of
from db.models import LoadTest
from engine.clock import Clock
from engine.fleet.registry import Registry
from engine.loadtest.generator import Generator, Plan, Sample, Tally
from engine.loadtest.results import latency_pair
from engine.loadtest.schedule import cumulative
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
    """A validated start request: with stages, `rate` is their peak and `duration_s` their sum; with requests,
    path and method are the first one's."""

    users: int
    rate: float
    duration_s: float
    service: str
    path: str = "/"
    method: str = "GET"
    start_rps: float | None = None
    stages: tuple[LoadStage, ...] = ()
    requests: tuple[LoadRequest, ...] = ()
    route_key: str | None = None

    @property
    def ramp(self) -> tuple[tuple[float, float], ...]:
        """The stages as (duration s, target req/s) pairs (empty: the constant rate)."""
        return tuple((s.durationS, s.targetRps) for s in self.stages)

    def due_by(self, elapsed_s: float) -> float:
        """Requests the schedule holds in its first elapsed_s seconds (the rate's integral; all shares)."""
        if self.stages:
            return cumulative(self.start_rps or 0.0, self.ramp, elapsed_s)
        return self.rate * min(elapsed_s, self.duration_s)

    def planned(self, second: int) -> float:
        """Requests due in second `second` of the run (1-based), constant or staged."""
        return self.due_by(float(second)) - self.due_by(float(second - 1))


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
    on_second: Callable[[int, Tally], None] | None = None


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

    def validate_shape(self, body: LoadTestStart) -> LoadTestRequest:
        """The one check of a start request (API and experiments): fields that exclude each other, the bounds and the
        target; ValidationFailed names each field and the limit."""
        lim = self.limits
        problems = body.shape_problems()
        stages = tuple(body.stages or ())
        if stages:
            rate = max([body.startRps or 0.0, *(s.targetRps for s in stages)])
            duration_s = sum(s.durationS for s in stages)
            rate_field = duration_field = "stages"
        else:
            rate, duration_s = body.requestsPerSecond or 0.0, body.duration or 0.0
            rate_field, duration_field = "requestsPerSecond", "duration"
        if rate > lim.max_rps:
            problems.append({"field": rate_field, "message": f"at most {lim.max_rps:g} req/s (MAX_RPS)"})
        if duration_s > lim.max_duration_s:
            problems.append({"field": duration_field, "message": f"at most {lim.max_duration_s:g} s (MAX_DURATION)"})
        if body.concurrentUsers > lim.max_users:
            problems.append({"field": "concurrentUsers", "message": f"at most {lim.max_users} (MAX_USERS)"})
        service = body.targetService
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
        requests = tuple(body.requests or ())
        first = requests[0] if requests else None
        return LoadTestRequest(
            body.concurrentUsers, rate, duration_s, service, first.path if first else body.path,
            (first.method if first else body.method).upper(), (body.startRps or 0.0) if stages else None, stages,
            requests, body.routeKey,
        )

    def start(self, req: LoadTestRequest, on_second: Callable[[int, Tally], None] | None = None) -> LoadTestOut:
        """Create the row and launch the run; Conflict while another runs.

        on_second(second, tally) is called on the engine loop with each second of the run (all shares merged,
        histograms included; read it, do not change it) after it was recorded; it must not block, and what it
        raises is logged and ignored.
        wait(id) tells when the run ended.
        """
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
                    shape=shape_of(req.start_rps, req.stages, req.requests, req.route_key),
                )
                session.add(row)
                session.flush()
                run = _Run(row.id, req, now, workers, on_second=on_second)
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

    def stop_now(self) -> None:
        """On the engine loop: tell the running test to stop, without waiting (its end follows within a second)."""
        run = self._run
        if run is not None and run.status == LoadTestStatus.RUNNING and run.stop is not None:
            run.stop()

    def wait(self, run_id: int, timeout_s: float) -> LoadTestOut:
        """Block (not on the engine loop) until run run_id ended or timeout_s passed; its status then (status running
        when the time ran out). A run this engine did not start: its stored status, at once; NotFound when none."""
        run = self._run
        if run is not None and run.id == run_id:
            if run.done.wait(timeout_s):
                self._writer.flush()
            return self._status_of(run)
        with self._sessions() as session:
            row = session.get(LoadTest, run_id)
            if row is None:
                raise NotFound("load test", str(run_id))
            return load_test_out(row)

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
        return Plan(req.rate, req.duration_s, users, backlog, offset, stride, req.start_rps or 0.0, req.ramp)

    async def _execute(self, run: _Run) -> None:
        req = run.request
        spec = self._registry.by_name(req.service)
        if spec is None:
            self._finish(run, LoadTestStatus.FAILED)
            return
        merger = _SecondMerger(run.workers, lambda s: self._on_second(run, s))
        pool = WorkerPool(self._router, spec, req.method, req.path, run.workers,
                          lambda share, shares: self._plan(req, share, shares), self.limits.drain_s,
                          uvloop=self.limits.uvloop, requests=req.requests, route_key=req.route_key)
        send = router_sender(self._router, req.service, req.method, req.path, requests=req.requests,
                             route_key_pattern=req.route_key)
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
        if run.on_second is not None:
            try:
                run.on_second(sample.second, t)
            except Exception as exc:  # a caller's check must not end the run
                log.error("load test %d: on_second failed: %s", run.id, exc, extra={"meta": {"loadTestId": run.id}})

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
            shortfallPercent=_shortfall(req, t.sent, run.elapsed_s),
            elapsedSeconds=round(run.elapsed_s, 3), sent=t.sent, errors=dict(t.errors),
            latency=latency_pair(t.corrected, t.uncorrected), **_shape_out(req),
        )


def _shortfall(req: LoadTestRequest, sent: int, elapsed_s: float) -> float | None:
    """How far below the schedule so far the run sent, %: a staged run against the rate's integral up to now."""
    if elapsed_s <= 0:
        return None
    if req.stages:
        due = req.due_by(elapsed_s)
        return None if due <= 0 else round(max(0.0, 100.0 * (1 - sent / due)), 2)
    return round(max(0.0, 100.0 * (1 - sent / elapsed_s / req.rate)), 2)


def _shape_out(req: LoadTestRequest) -> dict[str, Any]:
    """LoadTestOut's shape fields of a run: only those it had."""
    out: dict[str, Any] = {}
    if req.stages:
        out["startRps"], out["stages"] = req.start_rps or 0.0, list(req.stages)
    if req.requests:
        out["requests"] = list(req.requests)
    if req.route_key is not None:
        out["routeKey"] = req.route_key
    return out


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
