"""An experiment's schedule on the engine loop: stage marks, faults and scaling steps at t0 + atS.

Chaos and scaling calls block on the database (and a scale-up on a new process's health), so each runs in a
thread; the loop only keeps the timers, the tasks and what this run started, so a halt can end it all at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from contract.chaos import SimulationKind, SimulationOut
from contract.errors import ApiError, Conflict, NotFound
from contract.experiments import (
    DatabaseOverloadFault,
    ExperimentStep,
    LatencyFault,
    MemoryLeakFault,
    ScalingStep,
    ServiceFailureFault,
)
from engine.chaos.simulations import ChaosManager
from engine.clock import Clock
from engine.experiments.live import EventKind, LiveRun
from engine.fleet.registry import Registry
from engine.scaling.manager import ScalingManager
from engine.store.logs import event_logger

__all__ = ["EXPIRY_CHECK_S", "StepRunner"]

log = event_logger("experiments")
EXPIRY_CHECK_S = 0.5  # after a fault's planned end: the expiry job (every 0.25 s) has ended it by then


class StepRunner:
    """Schedules, runs and ends an experiment's steps."""

    def __init__(self, registry: Registry, chaos: ChaosManager, scaling: ScalingManager, clock: Clock) -> None:
        self._registry = registry
        self._chaos = chaos
        self._scaling = scaling
        self._clock = clock

    def schedule(self, live: LiveRun) -> None:
        """Stage marks and every step at its offset from the load's start (call right after the load started)."""
        loop = asyncio.get_running_loop()
        assert live.t0_mono is not None
        load = live.document.load
        offset, rate = 0.0, load.startRps
        for i, stage in enumerate(load.stages):
            title = f"stage {i + 1}: {rate:g} → {stage.targetRps:g} req/s over {stage.durationS:g} s"
            detail = {"stage": i, "fromRps": rate, "targetRps": stage.targetRps, "durationS": stage.durationS}
            self._later(live, loop, offset, lambda t=title, d=detail: live.event(self._clock.now(), EventKind.STAGE,
                                                                                 t, d))
            offset, rate = offset + stage.durationS, stage.targetRps
        for i, step in enumerate(live.document.faults):
            self._later(live, loop, step.atS, lambda i=i, step=step: self._spawn(live, self._step(live, i, step)))

    def _later(self, live: LiveRun, loop: asyncio.AbstractEventLoop, at_s: float, action: Any) -> None:
        assert live.t0_mono is not None
        delay = max(0.0, live.t0_mono + at_s - self._clock.monotonic())

        def fire() -> None:
            if live.running:
                action()

        live.handles.append(loop.call_later(delay, fire))

    @staticmethod
    def _spawn(live: LiveRun, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        live.tasks.add(task)
        task.add_done_callback(live.tasks.discard)

    def cancel(self, live: LiveRun) -> None:
        """No step not yet due will run; a fault still starting is ended as soon as it has started."""
        live.faults_closed = True
        for handle in live.handles:
            handle.cancel()
        live.handles.clear()

    def end_faults_soon(self, live: LiveRun, why: str) -> None:
        """End every fault this run started that is still active, each in its own thread, now."""
        for sim_id in list(live.sims):
            self._spawn(live, self._end_fault(live, sim_id, why))

    async def end_all(self, live: LiveRun, why: str) -> None:
        """Wait for the steps under way, then end every fault this run started that is still active."""
        self.cancel(live)
        while live.tasks:
            await asyncio.gather(*list(live.tasks), return_exceptions=True)
        for sim_id in list(live.sims):
            await self._end_fault(live, sim_id, why)

    async def _step(self, live: LiveRun, index: int, step: ExperimentStep) -> None:
        if isinstance(step, ScalingStep):
            await self._scale(live, index, step)
        else:
            await self._fault(live, index, step)

    async def _fault(self, live: LiveRun, index: int,
                     step: LatencyFault | ServiceFailureFault | DatabaseOverloadFault | MemoryLeakFault) -> None:
        target = getattr(step.params, "serviceName", None) or (
            live.document.load.service if step.kind in (SimulationKind.NETWORK_LATENCY,
                                                        SimulationKind.SERVICE_FAILURE) else None)
        where = target or "the engine"
        try:
            sim = await asyncio.to_thread(self._start, step, target)
        except ApiError as exc:
            live.event(self._clock.now(), EventKind.FAULT_START, f"{step.kind.value} on {where} not started: {exc}",
                       {"step": index, "kind": step.kind.value, "target": target, "error": str(exc)})
            return
        live.sims[sim.id] = index
        live.event(self._clock.now(), EventKind.FAULT_START, f"{step.kind.value} on {where} (simulation {sim.id})",
                   {"step": index, "simulationId": sim.id, "kind": step.kind.value, "target": target,
                    "params": step.params.model_dump(mode="json"), "durationS": step.durationS})
        if live.faults_closed:  # halted or stopped while it was starting
            await self._end_fault(live, sim.id, "the run ended early")
            return
        loop = asyncio.get_running_loop()
        live.handles.append(loop.call_later(step.durationS + EXPIRY_CHECK_S, lambda: self._spawn(
            live, self._end_fault(live, sim.id, "at its planned end"))))

    def _start(self, step: LatencyFault | ServiceFailureFault | DatabaseOverloadFault | MemoryLeakFault,
               target: str | None) -> SimulationOut:
        ms = step.durationS * 1000.0
        if isinstance(step, LatencyFault):
            p = step.params
            return self._chaos.network_latency(p.latency, ms, target, jitter_ms=p.jitter, probability=p.probability)
        if isinstance(step, ServiceFailureFault):
            f = step.params
            assert target is not None
            return self._chaos.service_failure(target, ms, probability=f.probability, status=f.statusCode,
                                               mode=f.mode)
        if isinstance(step, DatabaseOverloadFault):
            return self._chaos.database_overload(ms, step.params.intensity)
        return self._chaos.memory_leak(ms, step.params.rate)

    async def _end_fault(self, live: LiveRun, sim_id: int, why: str) -> None:
        index = live.sims.pop(sim_id, None)
        if index is None:
            return  # ended already
        try:
            await asyncio.to_thread(self._chaos.stop, sim_id)
            how = f"ended: {why}"
        except (Conflict, NotFound):
            how = "expired"
        live.event(self._clock.now(), EventKind.FAULT_END, f"simulation {sim_id} {how}",
                   {"step": index, "simulationId": sim_id, "how": how})

    async def _scale(self, live: LiveRun, index: int, step: ScalingStep) -> None:
        before, after, error = await asyncio.to_thread(self._scale_to, step.service, step.scaleTo)
        title = f"{step.service} scaled {before} → {after} (to {step.scaleTo})" + (f": {error}" if error else "")
        live.event(self._clock.now(), EventKind.SCALE, title,
                   {"step": index, "service": step.service, "from": before, "to": after, "scaleTo": step.scaleTo,
                    "error": error})

    def _scale_to(self, service: str, target: int) -> tuple[int, int, str | None]:
        """Scale up or down one instance at a time until the count is target: (before, after, why it stopped)."""
        spec = self._registry.by_name(service)
        if spec is None:
            return 0, 0, f"no registered service named {service!r}"
        before = count = len(self._scaling.fleet.running(service))
        try:
            while count < target:
                count = self._scaling.scale_up(spec.id).newInstanceCount
            while count > target:
                count = self._scaling.scale_down(spec.id).newInstanceCount
        except ApiError as exc:
            return before, len(self._scaling.fleet.running(service)), str(exc)
        return before, count, None
