"""Managed instances: real processes the engine starts from a service's launch command, and stops.

start() launches `launch_command` with {port} set to a free loopback port, waits (bounded) for its
health path to answer 200, then registers it (a row, the registry, the health tracker seeded
healthy) so the balancer picks it. stop() takes one out of the balancer first, waits (bounded) for
its requests in flight to finish, then stops it (SIGTERM, SIGKILL after a grace period).

Supervision rule: an instance whose process exits when nobody asked is replaced (a new process on
a new port; the old row goes). One stopped on purpose (scale-down, a chaos kill, the engine
stopping) is not: a chaos-killed instance stays registered, so health checks show it and the
autoscaler or an operator decides what follows. A replacement needs its row, so while PostgreSQL
is down the dead instance waits (health checks mark it unhealthy, the balancer skips it) and is
replaced once the database is back.
"""

from __future__ import annotations

import queue
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from contract.errors import Conflict, ProcessError
from db.models import Instance, Service
from engine.fleet.processes import LoopbackInstance, free_port, minimal_env, spawn, stop_all, wait_ready
from engine.store.logs import event_logger
from engine.store.outage import UNAVAILABLE, DatabaseOutage

__all__ = ["ManagedFleet", "ManagedInstance"]

log = event_logger("fleet")
# a start that fails with these leaves no process behind: not ready, or no row could be written for it
_START_FAILED: tuple[type[Exception], ...] = (ProcessError, *UNAVAILABLE)


@dataclass
class ManagedInstance(LoopbackInstance):
    """A process the engine started for a service, and its row once registered."""

    instance_id: int | None = None
    service_id: int | None = None  # its service's identity; `service`, the name, follows a rename
    on_purpose: bool = False  # stopped by us (scale-down, chaos kill, shutdown): not replaced


class _Spawner:
    """Starts child processes from one long-lived thread.

    PR_SET_PDEATHSIG (engine.fleet.processes) fires when the *thread* that forked the child ends, not the
    process: children started from a pool or API thread would be killed when that thread exits.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[list[str], Path | None, Future[subprocess.Popen[bytes]]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="process-spawner", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            argv, log_path, future = job
            try:
                future.set_result(spawn(argv, env=minimal_env(), log_path=log_path,
                                        cwd=Path(__file__).resolve().parents[2]))
            except Exception as exc:
                future.set_exception(exc)

    def spawn(self, argv: list[str], log_path: Path | None) -> subprocess.Popen[bytes]:
        """Start argv from the spawner thread."""
        future: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((argv, log_path, future))
        return future.result(10.0)

    def close(self) -> None:
        """End the thread (its children are stopped first, by the fleet)."""
        self._jobs.put(None)


class ManagedFleet:
    """Owns every managed instance process."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        reload_registry: Callable[[], None],
        mark_healthy: Callable[[int], None],
        in_flight: Callable[[int], int],
        *,
        port_base: int,
        log_dir: Path | None = None,
        ready_timeout_s: float = 15.0,
        drain_timeout_s: float = 10.0,
        grace_s: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._reload = reload_registry
        self._mark_healthy = mark_healthy
        self._in_flight = in_flight
        self._port_base = port_base
        self._log_dir = log_dir
        self.ready_timeout_s = ready_timeout_s
        self.drain_timeout_s = drain_timeout_s
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self._spawner = _Spawner()  # lives (and keeps the children alive) as long as the engine
        self.instances: list[ManagedInstance] = []
        self._dead: list[ManagedInstance] = []  # exited unasked, waiting for the database to be replaced
        self._outage = DatabaseOutage("replacing crashed instances", log)

    def running(self, service: str) -> list[ManagedInstance]:
        """The service's instances whose process is alive and not being stopped."""
        return [i for i in self.instances if i.service == service and not i.on_purpose and i.process.poll() is None]

    # -- start --------------------------------------------------------------------------------

    def start(self, service_id: int, count: int = 1) -> list[ManagedInstance]:
        """Launch `count` instances at once, wait until each is healthy, then register them all."""
        with self._sessions() as session:
            row = session.get(Service, service_id)
            if row is None or not row.launch_command:
                raise Conflict("the service is not managed: it has no launch command")
            name, command, health_path = row.name, row.launch_command, row.health_path
        launched = [self._launch(service_id, name, command) for _ in range(count)]
        try:
            wait_ready(launched, self.ready_timeout_s, health_path)
            with self._sessions.begin() as session:
                for inst in launched:
                    row_inst = Instance(service_id=service_id, url=inst.url, pid=inst.process.pid, status="healthy")
                    session.add(row_inst)
                    session.flush()
                    inst.instance_id = row_inst.id
        except _START_FAILED:
            stop_all([i.process for i in launched], self.grace_s)
            with self._lock:
                self.instances = [i for i in self.instances if i not in launched]
            raise
        self._reload()
        for inst in launched:
            assert inst.instance_id is not None
            self._mark_healthy(inst.instance_id)  # checked just now: the balancer may pick it at once
        log.info("started %d instance(s) of %s: %s", count, name, ", ".join(i.url for i in launched),
                 extra={"meta": {"service": name, "instances": [i.url for i in launched]}})
        return launched

    def restore(self, skip: frozenset[str] = frozenset()) -> None:
        """After a start: the instance rows of managed services point at processes that died with the last
        engine; drop them and start as many afresh (within min..max)."""
        with self._sessions.begin() as session:
            rows = session.scalars(select(Service).where(Service.launch_command.is_not(None))).all()
            plan = []
            for row in rows:
                if row.name in skip:
                    continue
                plan.append((row.id, row.name, max(row.min_instances, min(len(row.instances), row.max_instances))))
                row.instances.clear()
        self._reload()
        for service_id, name, count in plan:
            try:
                self.start(service_id, count)
            except (ProcessError, Conflict) as exc:
                log.error("could not restart managed service %s: %s", name, exc, extra={"meta": {"service": name}})

    def _launch(self, service_id: int, service: str, command: str) -> ManagedInstance:
        with self._lock:
            taken = {i.port for i in self.instances}
            port = free_port(self._port_base, taken)
            argv = shlex.split(command.replace("{port}", str(port)))
            log_path = self._log_dir / f"{service}-{port}.log" if self._log_dir else None
            inst = ManagedInstance(service, port, self._spawner.spawn(argv, log_path), service_id=service_id)
            self.instances.append(inst)
        return inst

    # -- stop ---------------------------------------------------------------------------------

    def stop_one(self, service: str) -> ManagedInstance:
        """Take the newest instance out of the balancer, let its requests finish (bounded), stop it."""
        with self._lock:
            candidates = self.running(service)
            if not candidates:
                raise Conflict(f"{service} has no running managed instance to stop")
            victim = candidates[-1]
            victim.on_purpose = True
        if victim.instance_id is not None:
            with self._sessions.begin() as session:
                session.execute(delete(Instance).where(Instance.id == victim.instance_id))
            self._reload()  # from here on the balancer does not pick it
            time.sleep(0.05)  # a request picked just before the reload is counted in flight by now
            deadline = time.monotonic() + self.drain_timeout_s
            while self._in_flight(victim.instance_id) > 0 and time.monotonic() < deadline:
                time.sleep(0.02)
        stop_all([victim.process], self.grace_s)
        with self._lock:
            self.instances.remove(victim)
        log.info("stopped instance %s of %s (drained)", victim.url, service,
                 extra={"meta": {"service": service, "instance": victim.url}})
        return victim

    def kill(self, service: str) -> str | None:
        """Chaos: terminate one running instance process, leaving it registered; its URL, or None."""
        with self._lock:
            candidates = self.running(service)
            if not candidates:
                return None
            victim = candidates[-1]
            victim.on_purpose = True
        stop_all([victim.process], timeout=2.0)
        return victim.url

    def rename(self, service_id: int, name: str) -> int:
        """The service was renamed: its processes run on undisturbed, scaled, killed, replaced and stopped under
        the new name from now on; returns how many there are."""
        with self._lock:
            mine = [i for i in (*self.instances, *self._dead) if i.service_id == service_id]
            for inst in mine:
                inst.service = name
        return len(mine)

    def forget(self, service: str) -> None:
        """The service was deleted: stop its processes."""
        with self._lock:
            mine = [i for i in self.instances if i.service == service]
            for inst in mine:
                inst.on_purpose = True
        stop_all([i.process for i in mine], self.grace_s)
        with self._lock:
            self.instances = [i for i in self.instances if i.service != service]

    def stop_all(self) -> None:
        """The engine is stopping: every process, on purpose."""
        with self._lock:
            for inst in self.instances:
                inst.on_purpose = True
            procs = [i.process for i in self.instances]
        stop_all(procs, self.grace_s)
        with self._lock:
            self.instances = []
        self._spawner.close()

    # -- supervision --------------------------------------------------------------------------

    def supervise(self) -> int:
        """Replace every instance that exited when nobody asked; returns how many were replaced.

        While the database is down the dead wait in order (one warning says so), and the next call
        after it returns replaces them.
        """
        with self._lock:
            dead = [i for i in self.instances if not i.on_purpose and i.process.poll() is not None]
            for inst in dead:
                self.instances.remove(inst)
        for inst in dead:
            log.warning("instance %s of %s exited unexpectedly (code %s): replacing it", inst.url, inst.service,
                        inst.process.returncode, extra={"meta": {"service": inst.service, "instance": inst.url}})
        self._dead.extend(dead)
        replaced = 0
        while self._dead:
            inst = self._dead[0]
            try:
                service_id = self._forget_row(inst)
                if service_id is not None:
                    self.start(service_id)
                    replaced += 1
            except UNAVAILABLE as exc:
                self._outage.failed(exc)
                break
            except (ProcessError, Conflict) as exc:
                log.error("could not replace %s of %s: %s", inst.url, inst.service, exc)
            self._outage.succeeded()
            self._dead.pop(0)
        return replaced

    def _forget_row(self, inst: ManagedInstance) -> int | None:
        """Delete a dead instance's row (the registry follows); its service's id, None if the service is gone."""
        with self._sessions.begin() as session:
            if inst.instance_id is not None:
                session.execute(delete(Instance).where(Instance.id == inst.instance_id))
            service_id = session.scalar(select(Service.id).where(Service.id == inst.service_id))
        self._reload()
        return service_id
