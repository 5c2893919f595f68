"""Failure simulation: starts, expires and stops simulations, each a row with its measured effect.

Kinds: service-failure and network-latency act through the fault layer (engine.chaos.faults) on every
request the engine sends (traffic and health checks); service-failure with mode "kill" terminates a
real instance process of a managed service; database-overload and memory-leak apply real pressure
(engine.chaos.pressure). Every simulation has an end time; the `simulation-expiry` job ends what is due,
stop() / stop_all() end them at once. A second simulation of the same kind on the same target while
the first is active (or still starting) is refused with 409 (replacing it silently would hide what the first did).
A start applies its effect outside the manager's lock (a database overload may wait up to its connect timeout), so
stop() and stop_all() never wait for one; a start still under way when stop_all() runs ends as soon as it has started.
An end takes effect at once whatever the database does; when PostgreSQL is down its row is written
once it is back (ended_at says when it really ended), and list() shows it ended meanwhile.
A service-failure or network-latency on a service started with `silence` also adds a silence of that service's
alerts until its end and `silence_grace_s` more, the time the service's health takes to recover once the fault is
lifted (the silence names the simulation); its end, early or on time, ends the silence that much later.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

import psutil
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from contract.chaos import (
    Intensity,
    SimulationEffect,
    SimulationKind,
    SimulationOut,
    SimulationParams,
    SimulationStatus,
    WriteFigures,
    WriteLatencyChange,
)
from contract.errors import Conflict, NotFound, Unavailable, ValidationFailed
from db import alerting as alert_queries
from db.models import Simulation
from engine.chaos.faults import Fault, FaultLayer
from engine.chaos.pressure import DatabaseOverload, MemoryLeak
from engine.clock import Clock
from engine.fleet.registry import Registry, ServiceSpec
from engine.store.logs import event_logger
from engine.store.outage import UNAVAILABLE, DatabaseOutage
from engine.store.writer import BatchWriter, WriteLatency

__all__ = ["ChaosManager", "SilenceHook"]

log = event_logger("chaos")
Arm = Callable[[int, float], Callable[[], SimulationEffect]]  # (simulation id, monotonic end) -> stop, measuring


def _rss_mb() -> float:
    return round(psutil.Process().memory_info().rss / (1 << 20), 1)


def _figures(w: WriteLatency) -> WriteFigures:
    return WriteFigures(batches=w.batches, p50=w.p50_ms, p95=w.p95_ms, max=w.max_ms)


class SilenceHook(Protocol):
    """The alerting's silences in memory: told when a simulation's silence was added or ended."""

    def reload(self) -> None:
        """Read the silences again (one was added)."""

    def ended(self, simulation_id: int, at: datetime) -> None:
        """The simulation's silences end at `at`, whatever the database holds yet."""


@dataclass
class _Active:
    id: int
    kind: SimulationKind
    target: str | None
    started: float  # monotonic
    ends: float  # monotonic
    stop: Callable[[], SimulationEffect] = field(default=SimulationEffect)
    silenced: bool = False


@dataclass(frozen=True)
class _Ended:
    """A simulation that has ended, its row not written yet."""

    id: int
    status: SimulationStatus
    ended_at: datetime
    effect: SimulationEffect
    silenced: bool = False


def _out(row: Simulation, remaining_ms: float | None, ended: _Ended | None) -> SimulationOut:
    """A simulation row as the API shows it (remainingMs only while active); `ended`, an end not written yet,
    overrides what the row says."""
    status, ended_at = SimulationStatus(row.status), row.ended_at
    effect = None if row.effect is None else SimulationEffect.model_validate(row.effect)
    if ended is not None:
        status, ended_at, remaining_ms, effect = ended.status, ended.ended_at, None, ended.effect
    return SimulationOut(
        id=row.id, kind=SimulationKind(row.kind), target=row.target,
        params=SimulationParams.model_validate(row.params), status=status,
        startedAt=row.started_at.isoformat(), endsAt=row.ends_at.isoformat(),
        endedAt=ended_at.isoformat() if ended_at else None, remainingMs=remaining_ms, effect=effect,
        silence=row.silence,
    )


class ChaosManager:
    """Owns the active simulations; called from API threads and the expiry job."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        registry: Registry,
        faults: FaultLayer,
        writer: BatchWriter,
        clock: Clock,
        *,
        conninfo: str,
        memory_cap_mb: int = 512,
        max_duration_ms: float = 3_600_000.0,
        kill: Callable[[str], str | None] | None = None,
        silences: SilenceHook | None = None,
        silence_grace_s: float = 0.0,
        engine_id: uuid.UUID | None = None,
    ) -> None:
        self._sessions = sessions
        self._engine_id = engine_id  # written on each row: a start elsewhere leaves a live engine's rows alone
        self._registry = registry
        self._faults = faults
        self._writer = writer
        self._clock = clock
        self._conninfo = conninfo
        self.memory_cap_mb = memory_cap_mb
        self.max_duration_ms = max_duration_ms
        self._kill = kill
        self.silences = silences
        self._grace = timedelta(seconds=silence_grace_s)
        self._lock = threading.Lock()
        self._active: dict[int, _Active] = {}
        self._starting: set[tuple[SimulationKind, str | None]] = set()  # (kind, target) being armed, lock not held
        self._generation = 0  # stop-all count: a start that began before one ends as soon as it has started
        self._unrecorded: dict[int, _Ended] = {}
        self._record_lock = threading.Lock()
        self._outage = DatabaseOutage("recording simulation ends", log, clock, retry_s=1.0)

    # -- start --------------------------------------------------------------------------------

    def service_failure(self, service: str, duration_ms: float, *, probability: float = 1.0,
                        status: int | None = None, mode: Literal["error", "kill"] = "error",
                        silence: bool = False) -> SimulationOut:
        """Fail requests to service (connection error or status), or kill one of its instances; with silence,
        the service's alerts are silenced until the end."""
        spec = self._known(service)
        params = SimulationParams(serviceName=service, duration=duration_ms, probability=probability,
                                  statusCode=status, mode=mode)
        if mode == "kill":
            if not spec.managed or self._kill is None:
                raise Conflict(f"service {service!r} is not managed: the engine has no process of it to kill")
            return self._start(SimulationKind.SERVICE_FAILURE, service, params, duration_ms, self._killer(service),
                               silence)

        def arm(sim_id: int, ends: float) -> Callable[[], SimulationEffect]:
            self._faults.add(Fault(sim_id, service, ends, probability, fail=True, status=status))
            return lambda: self._disarm(sim_id)

        return self._start(SimulationKind.SERVICE_FAILURE, service, params, duration_ms, arm, silence)

    def network_latency(self, latency_ms: float, duration_ms: float, service: str | None = None, *,
                        jitter_ms: float = 0.0, probability: float = 1.0, silence: bool = False) -> SimulationOut:
        """Delay requests to service (or to every service) by latency ± jitter; with silence (a service only),
        its alerts are silenced until the end."""
        if service is not None:
            self._known(service)
        elif silence:
            raise ValidationFailed([{"field": "silence", "message": "a silence needs serviceName"}])
        params = SimulationParams(latency=latency_ms, duration=duration_ms, serviceName=service, jitter=jitter_ms,
                                  probability=probability)

        def arm(sim_id: int, ends: float) -> Callable[[], SimulationEffect]:
            self._faults.add(Fault(sim_id, service, ends, probability, latency_ms=latency_ms, jitter_ms=jitter_ms))
            return lambda: self._disarm(sim_id)

        return self._start(SimulationKind.NETWORK_LATENCY, service, params, duration_ms, arm, silence)

    def database_overload(self, duration_ms: float, intensity: Intensity) -> SimulationOut:
        """Busy connections on the engine's own database until the end."""
        params = SimulationParams(duration=duration_ms, intensity=intensity)

        def arm(sim_id: int, ends: float) -> Callable[[], SimulationEffect]:
            before = self._writer.write_latency(30.0)
            overload = DatabaseOverload(self._conninfo, intensity, tag=f"-{sim_id}", on_error=lambda e: log.warning(
                "database overload %d: a statement failed: %s", sim_id, e))
            try:
                overload.start()
            except Exception as exc:
                overload.stop()
                raise Unavailable(f"database overload could not connect: {type(exc).__name__}") from exc
            started = self._clock.monotonic()

            def stop() -> SimulationEffect:
                overload.stop()
                during = self._writer.write_latency(self._clock.monotonic() - started)
                return SimulationEffect(
                    connections=overload.connections, lockHolder=overload.locks, statements=overload.statements,
                    writeLatencyMs=WriteLatencyChange(before=_figures(before), during=_figures(during)),
                )

            return stop

        return self._start(SimulationKind.DATABASE_OVERLOAD, None, params, duration_ms, arm)

    def memory_leak(self, duration_ms: float, rate_mb_s: float) -> SimulationOut:
        """Allocate rate MB/s in the engine, up to the cap, until the end."""
        params = SimulationParams(duration=duration_ms, rate=rate_mb_s, capMb=self.memory_cap_mb)

        def arm(sim_id: int, ends: float) -> Callable[[], SimulationEffect]:
            rss_before = _rss_mb()
            planned = math.ceil(rate_mb_s * duration_ms / 1000.0)  # rate x duration, the cap bounding it
            leak = MemoryLeak(rate_mb_s, min(self.memory_cap_mb, planned), clock=self._clock)
            leak.start(began=ends - duration_ms / 1000.0)  # the simulation's own start: due counts from there

            def stop() -> SimulationEffect:
                # what was due by now, ticks aside: rate x seconds run, and at its end exactly rate x duration
                held, rss_end = leak.allocate_due(), _rss_mb()
                leak.stop()
                return SimulationEffect(heldMb=held, rssMbBefore=rss_before, rssMbAtEnd=rss_end,
                                        rssMbAfterRelease=_rss_mb())

            return stop

        return self._start(SimulationKind.MEMORY_LEAK, None, params, duration_ms, arm)

    def _known(self, service: str) -> ServiceSpec:
        spec = self._registry.by_name(service)
        if spec is None:
            raise ValidationFailed([{"field": "serviceName", "message": f"no registered service named {service!r}"}])
        return spec

    def _killer(self, service: str) -> Arm:
        def arm(sim_id: int, ends: float) -> Callable[[], SimulationEffect]:
            assert self._kill is not None
            killed = self._kill(service)
            if killed is None:
                raise Conflict(f"service {service!r} has no running instance process to kill")
            log.warning("chaos: killed instance %s of %s", killed, service,
                        extra={"meta": {"simulation": sim_id, "instance": killed}})
            return lambda: SimulationEffect(killed=killed)

        return arm

    def _disarm(self, sim_id: int) -> SimulationEffect:
        self._faults.remove(sim_id)
        return SimulationEffect(requestsAffected=self._faults.fired.pop(sim_id, 0))

    def _start(self, kind: SimulationKind, target: str | None, params: SimulationParams, duration_ms: float,
               arm: Arm, silence: bool = False) -> SimulationOut:
        if duration_ms > self.max_duration_ms:
            raise ValidationFailed([{"field": "duration",
                                     "message": f"at most {self.max_duration_ms:.0f} ms (SIMULATION_MAX_MS)"}])
        stored = params.model_dump(mode="json")
        slot = (kind, target)
        with self._lock:
            clash = next((a for a in self._active.values() if a.kind == kind and a.target == target), None)
            if clash is not None:
                raise Conflict(f"{kind} simulation {clash.id} on {target or 'every service'} is active; stop it first")
            if slot in self._starting:
                raise Conflict(f"a {kind} simulation on {target or 'every service'} is starting; stop it first")
            self._starting.add(slot)
            generation = self._generation
        try:
            # outside the lock: arming may wait on the database or a process, and stop-all must not wait for it
            sim_id, ends, mono, stop = self._arm(kind, target, stored, duration_ms, arm, silence)
            with self._lock:
                self._active[sim_id] = _Active(sim_id, kind, target, mono, ends, stop, silenced=silence)
                stopped_meanwhile = generation != self._generation
        finally:
            with self._lock:
                self._starting.discard(slot)
        if stopped_meanwhile:  # a stop-all ran while this one was starting: it ends too
            self._end(sim_id, SimulationStatus.STOPPED)
            self._record()
            with self._sessions() as session:
                return self._out(session.get_one(Simulation, sim_id))
        if silence and self.silences is not None:
            self.silences.reload()
        where = target or ("every service" if kind is SimulationKind.NETWORK_LATENCY else "the engine")
        log.warning("chaos: %s on %s for %g ms", kind, where, duration_ms,
                    extra={"meta": {"simulation": sim_id, **stored}})
        with self._sessions() as session:
            return _out(session.get_one(Simulation, sim_id), duration_ms, None)

    def _arm(self, kind: SimulationKind, target: str | None, stored: dict[str, object], duration_ms: float,
             arm: Arm, silence: bool) -> tuple[int, float, float, Callable[[], SimulationEffect]]:
        """Write the simulation's row and apply its effect: (id, monotonic end, monotonic start, stop); a failed
        arm leaves the row failed."""
        now, mono = self._clock.now(), self._clock.monotonic()
        ends = mono + duration_ms / 1000.0
        with self._sessions.begin() as session:
            row = Simulation(kind=kind.value, target=target, params=stored, status=SimulationStatus.ACTIVE.value,
                             started_at=now, ends_at=now + timedelta(milliseconds=duration_ms),
                             silence=silence and target is not None, engine_id=self._engine_id)
            session.add(row)
            session.flush()
            sim_id = row.id
            if row.silence:
                alert_queries.add_silence(session, service=target, rule_id=None, starts_at=row.started_at,
                                          ends_at=row.ends_at + self._grace, created_by=None, simulation_id=sim_id,
                                          comment=f"expected: {kind.value} simulation {sim_id} on {target}")
        try:
            stop = arm(sim_id, ends)
        except Exception:
            with self._sessions.begin() as session:  # nothing happened: the row says so
                failed_at = self._clock.now()
                session.execute(update(Simulation).where(Simulation.id == sim_id)
                                .values(status=SimulationStatus.FAILED.value, ended_at=failed_at))
                alert_queries.delete_simulation_silences(session, sim_id)
            raise
        return sim_id, ends, mono, stop

    # -- end ----------------------------------------------------------------------------------

    def expire_due(self) -> int:
        """End every simulation past its end time (the expiry job); returns how many ended."""
        now = self._clock.monotonic()
        with self._lock:
            due = [a.id for a in self._active.values() if a.ends <= now]
        for sim_id in due:
            self._end(sim_id, SimulationStatus.COMPLETED)
        self._record()  # after every due end took effect: a slow database delays rows, not ends
        return len(due)

    def stop(self, sim_id: int) -> SimulationOut:
        """End one active simulation now."""
        if sim_id not in self._active:
            with self._sessions() as session:
                if session.get(Simulation, sim_id) is None:
                    raise NotFound("simulation", sim_id)
            raise Conflict(f"simulation {sim_id} is not active")
        self._end(sim_id, SimulationStatus.STOPPED)
        self._record()
        with self._sessions() as session:
            return self._out(session.get_one(Simulation, sim_id))

    def stop_all(self) -> int:
        """End every active simulation now; returns how many. One still starting ends as soon as it has started."""
        with self._lock:
            self._generation += 1
            ids = list(self._active)
        for sim_id in ids:
            self._end(sim_id, SimulationStatus.STOPPED)
        self._record()
        return len(ids)

    def _end(self, sim_id: int, status: SimulationStatus) -> None:
        with self._lock:
            active = self._active.pop(sim_id, None)
        if active is None:
            return  # ended by someone else meanwhile
        try:
            effect = active.stop()
        except Exception as exc:  # the effect is lost, the end is not
            effect = SimulationEffect(error=f"{type(exc).__name__}: {exc}"[:200])
        ended_at = self._clock.now()
        with self._lock:
            self._unrecorded[sim_id] = _Ended(sim_id, status, ended_at, effect, active.silenced)
        if active.silenced and self.silences is not None:
            self.silences.ended(sim_id, ended_at + self._grace)
        log.info("chaos: %s simulation %d %s", active.kind, sim_id, status,
                 extra={"meta": {"simulation": sim_id, "effect": effect.model_dump(mode="json")}})

    def _record(self) -> None:
        """Write the rows of ended simulations; while the database is down keep them and retry (each second)."""
        with self._record_lock:
            with self._lock:
                ended = list(self._unrecorded.values())
            if not ended or not self._outage.due():
                return
            try:
                with self._sessions.begin() as session:
                    for e in ended:
                        session.execute(update(Simulation).where(Simulation.id == e.id)
                                        .values(status=e.status.value, ended_at=e.ended_at,
                                                effect=e.effect.model_dump(mode="json")))
                        if e.silenced:
                            alert_queries.end_simulation_silences(session, e.id, e.ended_at + self._grace)
            except UNAVAILABLE as exc:
                self._outage.failed(exc)
                return
            self._outage.succeeded()
            with self._lock:
                for e in ended:
                    self._unrecorded.pop(e.id, None)

    # -- read ---------------------------------------------------------------------------------

    def list(self, limit: int = 100) -> list[SimulationOut]:
        """Simulations, newest first, active ones with their remaining time."""
        mono = self._clock.monotonic()
        remaining = {a.id: max(0.0, (a.ends - mono) * 1000.0) for a in self._active.values()}
        with self._sessions() as session:
            rows = session.scalars(select(Simulation).order_by(Simulation.id.desc()).limit(limit))
            return [self._out(r, remaining.get(r.id)) for r in rows]

    def _out(self, row: Simulation, remaining_ms: float | None = None) -> SimulationOut:
        # ended while the database was down: its row catches up within a second of its return
        return _out(row, remaining_ms, self._unrecorded.get(row.id))

    def active_count(self) -> int:
        """Simulations in effect now."""
        return len(self._active)
