"""Runs experiments: one at a time, on the engine loop, each run a row kept current every second.

    run() ── row (running, before) ── probes before ──fail──────────────────────────┐
                                          │ ok                                        │
                                          ▼                                           ▼
             load test (stages, requests) + steps at t0 + atS ── each second: figures, ThresholdBook
                                          │ ends / a threshold with abortOnFail fails (halt) / stop()
                                          ▼
             every fault the run started still active ended ── probes after (not when halted or stopped)
                                          ▼
                                  verdict, ended_at, result

A halt or a stop acts within the loop turn that decides it: the load is told to stop, pending steps are
cancelled and every simulation this run started is stopped (in threads: they write rows), so the blast
radius ends within a second. The API thread reads a live run from memory; a finished one from its row.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from contract.errors import Conflict, NotFound
from contract.experiments import (
    ExperimentDocument,
    ExperimentOut,
    ExperimentRunDetailOut,
    ExperimentRunOut,
    ExperimentRunStatus,
    ProbeResultOut,
    RunPhase,
    Verdict,
)
from contract.loadtest import LoadTestStatus
from contract.states import HealthState
from db import experiments as queries
from engine.chaos.simulations import ChaosManager
from engine.clock import Clock
from engine.experiments.checks import check_document, load_start
from engine.experiments.live import EventKind, LiveRun, halt_reason, probe_reason
from engine.experiments.steady import Prober, skipped
from engine.experiments.steps import StepRunner
from engine.experiments.thresholds import ThresholdBook, second_figures
from engine.fleet.registry import Registry
from engine.loadtest.generator import Tally, planned
from engine.loadtest.manager import LoadTestManager
from engine.scaling.manager import ScalingManager
from engine.store.logs import event_logger
from engine.traffic.router import Router

__all__ = ["ExperimentManager"]

log = event_logger("experiments")
STOP_WAIT_S = 5.0  # stop() answers once the run has ended, or after this long


class ExperimentManager:
    """Saves, checks, runs and stops experiments; at most one runs at a time, never beside a load test."""

    def __init__(
        self,
        registry: Registry,
        router: Router,
        loadtests: LoadTestManager,
        chaos: ChaosManager,
        scaling: ScalingManager,
        sessions: sessionmaker[Session],
        clock: Clock,
        run_soon: Callable[[Coroutine[Any, Any, Any]], Any],
        health_of: Callable[[int], HealthState],
    ) -> None:
        self._registry = registry
        self._loadtests = loadtests
        self._chaos = chaos
        self._sessions = sessions
        self._clock = clock
        self._run_soon = run_soon
        self._prober = Prober(registry, router, health_of, clock)
        self._steps = StepRunner(registry, chaos, scaling, clock)
        self._lock = threading.Lock()
        self._live: LiveRun | None = None
        self._task: asyncio.Task[None] | None = None

    # -- API thread ---------------------------------------------------------------------------

    def check(self, document: ExperimentDocument) -> None:
        """ValidationFailed (422) naming each field the fleet or the engine's bounds refuse."""
        check_document(document, self._registry, self._loadtests.limits, self._chaos.max_duration_ms)

    def save(self, document: ExperimentDocument, experiment_id: int | None = None) -> ExperimentOut:
        """Create an experiment (version 1) or save the next version of one; nothing saved when the check fails."""
        self.check(document)
        now = self._clock.now()
        with self._sessions.begin() as session:
            same_name = queries.by_name(session, document.name)
            if experiment_id is None:
                if same_name is not None:
                    raise Conflict(f"an experiment named {document.name!r} exists (id {same_name.id})",
                                   [{"field": "name", "message": "taken"}])
                row = queries.add_experiment(session, document, now)
            else:
                found = queries.get_experiment(session, experiment_id)
                if found is None:
                    raise NotFound("experiment", str(experiment_id))
                if same_name is not None and same_name.id != experiment_id:
                    raise Conflict(f"an experiment named {document.name!r} exists (id {same_name.id})",
                                   [{"field": "name", "message": "taken"}])
                row = queries.update_experiment(session, found, document, now)
            return queries.experiment_out(row)

    def delete(self, experiment_id: int) -> None:
        """Delete an experiment and its versions (its runs stay); 409 while it runs."""
        live = self._live
        if live is not None and live.running and live.experiment_id == experiment_id:
            raise Conflict(f"experiment {experiment_id} is running (run {live.id}); stop it first")
        with self._sessions.begin() as session:
            if not queries.delete_experiment(session, experiment_id):
                raise NotFound("experiment", str(experiment_id))

    def run(self, experiment_id: int) -> ExperimentRunOut:
        """Start a run of the experiment's current version; 409 while a run or a load test is running."""
        with self._lock:
            live = self._live
            if live is not None and live.running:
                raise Conflict(f"experiment run {live.id} is running; stop it first")
            test = self._loadtests.status()
            if test.status == LoadTestStatus.RUNNING:
                raise Conflict(f"load test {test.id} is running; stop it first")
            with self._sessions() as session:
                row = queries.get_experiment(session, experiment_id)
                if row is None:
                    raise NotFound("experiment", str(experiment_id))
                document = ExperimentDocument.model_validate(row.document)
            self.check(document)
            self._run_soon(asyncio.sleep(0))  # 503 before any row exists when the loop is down
            with self._sessions.begin() as session:
                experiment = queries.get_experiment(session, experiment_id)
                if experiment is None:
                    raise NotFound("experiment", str(experiment_id))
                run_row = queries.add_run(session, experiment, self._clock.now())
                live = LiveRun(run_row.id, experiment.id, experiment.name, experiment.version, document,
                               run_row.started_at, ThresholdBook(document.thresholds))
            self._live = live
        self._run_soon(self._start(live))
        log.info("experiment %s (version %d) run %d started", live.name, live.version, live.id,
                 extra={"meta": {"experimentRunId": live.id, "experimentId": experiment_id}})
        return live.out()

    def stop(self, run_id: int) -> ExperimentRunOut:
        """Stop the running run by hand (load stopped, faults ended; status stopped); 409 when it is not running."""
        live = self._live
        if live is None or live.id != run_id or not live.running:
            with self._sessions() as session:
                if queries.get_run(session, run_id) is None:
                    raise NotFound("experiment run", str(run_id))
            raise Conflict(f"experiment run {run_id} is not running")
        self._run_soon(self._stop(live, ExperimentRunStatus.STOPPED, "stopped by hand"))
        live.done.wait(STOP_WAIT_S)
        return self.run_out(run_id)

    def run_detail(self, run_id: int) -> ExperimentRunDetailOut:
        """A run with its document, seconds and timeline (the target's breaker, alert and health changes included);
        a running one as it is now."""
        live = self._live
        with self._sessions() as session:
            if live is not None and live.id == run_id and not live.stored:
                detail = live.detail()
            else:
                row = queries.get_run(session, run_id)
                if row is None:
                    raise NotFound("experiment run", str(run_id))
                detail = queries.run_detail_out(row)
            return queries.with_service_events(session, detail, self._clock.now())

    def run_out(self, run_id: int) -> ExperimentRunOut:
        """A run without its seconds and events (live while running)."""
        live = self._live
        if live is not None and live.id == run_id and not live.stored:
            return live.out()
        with self._sessions() as session:
            row = queries.get_run(session, run_id)
            if row is None:
                raise NotFound("experiment run", str(run_id))
            return queries.run_out(row)

    def running(self) -> int | None:
        """The id of the run in progress, if any."""
        live = self._live
        return live.id if live is not None and live.running else None

    # -- engine loop --------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """The engine is stopping: a running experiment is stopped (faults ended), bounded."""
        live, task = self._live, self._task
        if live is None or not live.running:
            return
        await self._stop(live, ExperimentRunStatus.STOPPED, "the engine stopped")
        if task is not None:
            await asyncio.wait({task}, timeout=2.0)

    async def _start(self, live: LiveRun) -> None:
        self._task = asyncio.get_running_loop().create_task(self._execute(live))

    async def _stop(self, live: LiveRun, status: ExperimentRunStatus, reason: str) -> None:
        if live.running and live.phase is not RunPhase.DONE:
            live.end_early(status, reason, self._clock.now())
            self._cut(live)

    def _cut(self, live: LiveRun) -> None:
        """End the blast radius now: the load told to stop, pending steps cancelled, this run's faults ended."""
        if live.phase is RunPhase.LOAD:
            self._loadtests.stop_now()
        self._steps.cancel(live)
        self._steps.end_faults_soon(live, "the run ended early")

    async def _execute(self, live: LiveRun) -> None:
        document = live.document
        try:
            live.event(self._clock.now(), EventKind.PHASE, "steady state before", {"phase": "before"})
            before = await self._probes(live, "before")
            if live.running and not all(p.ok for p in before):
                live.finish_early(ExperimentRunStatus.COMPLETED, probe_reason(before))
            elif live.running:
                await self._load(live)
            await self._steps.end_all(live, "the load ended")
            if live.load_ran:
                if live.status is ExperimentRunStatus.RUNNING:
                    live.phase = RunPhase.AFTER
                    live.event(self._clock.now(), EventKind.PHASE, "steady state after", {"phase": "after"})
                    await self._probes(live, "after")
                else:
                    why = "the run was halted" if live.status is ExperimentRunStatus.HALTED else "the run was stopped"
                    live.probes += [skipped(p, "after", i, p.service or document.load.service, why)
                                    for i, p in enumerate(document.steadyState)]
        except Exception as exc:
            log.error("experiment run %d failed: %s", live.id, exc, extra={"meta": {"experimentRunId": live.id}})
            live.finish_early(ExperimentRunStatus.FAILED, f"{type(exc).__name__}: {exc}"[:500])
            self._cut(live)
            await self._steps.end_all(live, "the run failed")
        finally:
            live.conclude(self._clock.now())
            await asyncio.to_thread(self._persist, live, True)
            live.done.set()
            log.info("experiment run %d %s: %s%s", live.id, live.status, live.verdict,
                     f" ({live.reason})" if live.reason else "", extra={"meta": {"experimentRunId": live.id}})

    async def _probes(self, live: LiveRun, phase: Literal["before", "after"]) -> list[ProbeResultOut]:
        results = []
        for i, probe in enumerate(live.document.steadyState):
            if not live.running and phase == "before":
                break
            result = await self._prober.probe(probe, phase, i, live.document.load.service)
            live.probes.append(result)
            results.append(result)
        return results

    async def _load(self, live: LiveRun) -> None:
        document = live.document
        req = self._loadtests.validate_shape(load_start(document))
        live.phase = RunPhase.LOAD
        test = await asyncio.to_thread(self._loadtests.start, req, lambda s, t: self._on_second(live, s, t))
        assert test.id is not None
        live.load_test_id = test.id
        live.begin_load(self._clock.now(), self._clock.monotonic())
        live.event(self._clock.now(), EventKind.PHASE, "load", {"phase": "load", "loadTestId": test.id})
        self._steps.schedule(live)
        if not live.running:  # stopped while the load test was starting
            self._loadtests.stop_now()
        while (await asyncio.to_thread(self._loadtests.wait, test.id, 0.25)).status == LoadTestStatus.RUNNING:
            pass
        live.event(self._clock.now(), EventKind.PHASE, "load ended", {"phase": "load", "loadTestId": test.id})

    def _on_second(self, live: LiveRun, second: int, tally: Tally) -> None:
        """One merged second of the load (on the loop): its figures, the thresholds, a halt when one says so."""
        load = live.document.load
        live.seconds.append(second_figures(second, planned(load.startRps, load.stages, second), tally))
        failing = live.book.add(second - 1, tally)
        if failing and live.status is ExperimentRunStatus.RUNNING:
            reason = halt_reason(live.document, live.book.results(), failing)
            live.end_early(ExperimentRunStatus.HALTED, reason, self._clock.now(), verdict=Verdict.FAIL,
                           thresholds=failing)
            self._cut(live)
        if not live.persisting:
            live.persisting = True
            asyncio.get_running_loop().create_task(asyncio.to_thread(self._persist, live, False))

    def _persist(self, live: LiveRun, final: bool) -> None:
        """Write the run's row as it is now (each second, and once at its end)."""
        try:
            with self._sessions.begin() as session:
                queries.save_run(session, live.id, live.row_values())
            if final:
                live.stored = True
        except Exception as exc:
            log.warning("experiment run %d: its row could not be written: %s", live.id, exc)
        finally:
            live.persisting = False
