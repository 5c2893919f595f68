"""Worker processes for load tests past one process's rate: each generates one share of the schedule.

A worker routes with the same code as the engine (Router: balancer, breaker, retries, the SSRF guard's policy)
over its own connection pool, on the instances that were serving when the run started, with the service's
breaker thresholds; its breaker and balancer state are its own (a process boundary cannot share
them per request). Every second it sends its tally over a pipe; the engine merges them.
Protocol, worker -> engine: ("ready",), ("second", n, tally), ("done",); engine -> worker:
("go", t0) and ("stop",). Workers are daemonic and die with the engine (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from contract.loadtest import LoadRequest
from engine.clock import SystemClock
from engine.fleet.registry import Registry, ServiceSpec
from engine.health.checker import HealthState
from engine.hosting import new_event_loop
from engine.loadtest.generator import Generator, Plan, Sample, Tally
from engine.loadtest.sender import router_sender
from engine.security.ssrf import Policy
from engine.traffic.breaker import BreakerConfig
from engine.traffic.breakers import BreakerBook
from engine.traffic.outlier import OutlierEjector
from engine.traffic.recorder import TrafficRecorder
from engine.traffic.resilience import ResilienceCounters, RetryBudget
from engine.traffic.router import Router

__all__ = ["WorkerPool"]

READY_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs; pickled to the child."""

    service: ServiceSpec
    algorithm: str
    breaker: BreakerConfig
    timeout_s: float
    retries: int
    policy: Policy
    max_body_bytes: int
    method: str
    path: str
    plan: Plan
    drain_s: float
    uvloop: bool = True
    requests: tuple[LoadRequest, ...] = ()
    route_key: str | None = None


class _NoWriter:
    """Worker breakers keep their transitions to themselves (the engine's book is the persisted one)."""

    def submit(self, event: object) -> None:
        """Discard."""


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def worker_main(conn: Connection, spec: WorkerSpec) -> None:
    """Child process entry."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the engine stops us
    with asyncio.Runner(loop_factory=lambda: new_event_loop(spec.uvloop)) as runner:
        runner.run(_work(conn, spec))


async def _work(conn: Connection, spec: WorkerSpec) -> None:
    clock = SystemClock()
    registry = Registry()
    registry.replace((spec.service,))
    router = Router(
        registry, lambda _id: HealthState.HEALTHY, BreakerBook(clock, _NoWriter(), spec.breaker),  # type: ignore[arg-type]
        OutlierEjector(clock), TrafficRecorder(), ResilienceCounters(clock), RetryBudget(), clock,
        algorithm=spec.algorithm, timeout_s=spec.timeout_s, max_retries=spec.retries, policy=spec.policy,
        max_body_bytes=spec.max_body_bytes,
    )
    await router.start()
    send = router_sender(router, spec.service.name, spec.method, spec.path, requests=spec.requests,
                         route_key_pattern=spec.route_key)
    gen = Generator(spec.plan, send, clock.monotonic, lambda s: conn.send(("second", s.second, s.tally.to_wire())),
                    drain_s=spec.drain_s)
    conn.send(("ready",))
    message = await asyncio.to_thread(conn.recv)
    if message[0] == "go":
        loop = asyncio.get_running_loop()
        loop.add_reader(conn.fileno(), lambda: gen.stop() if conn.poll() and conn.recv()[0] == "stop" else None)
        try:
            await gen.run(message[1])
        finally:
            loop.remove_reader(conn.fileno())
    await router.close()
    conn.send(("done",))


class WorkerPool:
    """Starts shares 1..n-1 in worker processes and feeds their seconds to `add(share, sample)`."""

    def __init__(self, router: Router, service: ServiceSpec, method: str, path: str, shares: int,
                 plan_of: Callable[[int, int], Plan], drain_s: float, *, uvloop: bool = True,
                 requests: tuple[LoadRequest, ...] = (), route_key: str | None = None) -> None:
        self._router = router
        self._service = service
        self._method = method
        self._path = path
        self._shares = shares
        self._plan_of = plan_of
        self._drain_s = drain_s
        self._uvloop = uvloop
        self._requests = requests
        self._route_key = route_key
        self._procs: list[BaseProcess] = []
        self._conns: list[Connection] = []
        self._ready: list[asyncio.Future[None]] = []
        self._done: list[asyncio.Future[None]] = []

    def _spec(self, share: int) -> WorkerSpec:
        serving = {t.id for t in self._router.candidates(self._service)}
        service = replace(self._service, instances=tuple(i for i in self._service.instances if i.id in serving))
        return WorkerSpec(service, self._router.algorithm, self._router.breakers.get(self._service.name).config,
                          self._router.timeout_s, self._router.max_retries, self._router.policy,
                          self._router.max_body_bytes, self._method, self._path,
                          self._plan_of(share, self._shares), self._drain_s, self._uvloop, self._requests,
                          self._route_key)

    async def start(self, add: Callable[[int, Sample], None], finished: Callable[[int], None],
                    monotonic: Callable[[], float]) -> float:
        """Spawn the workers, wait until each is ready, and return the shared start time t0."""
        if self._shares == 1:
            return monotonic()
        loop = asyncio.get_running_loop()
        ctx = multiprocessing.get_context("spawn")
        for share in range(1, self._shares):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(theirs, self._spec(share)), daemon=True,
                               name=f"loadtest-worker-{share}")
            proc.start()
            theirs.close()
            ready: asyncio.Future[None] = loop.create_future()
            done: asyncio.Future[None] = loop.create_future()
            self._procs.append(proc)
            self._conns.append(mine)
            self._ready.append(ready)
            self._done.append(done)
            loop.add_reader(mine.fileno(), self._on_message, share, mine, ready, done, add, finished)
        await asyncio.wait_for(asyncio.gather(*self._ready), READY_TIMEOUT_S)
        t0 = monotonic() + 0.05
        for conn in self._conns:
            conn.send(("go", t0))
        return t0

    @staticmethod
    def _on_message(share: int, conn: Connection, ready: asyncio.Future[None], done: asyncio.Future[None],
                    add: Callable[[int, Sample], None], finished: Callable[[int], None]) -> None:
        try:
            message: tuple[Any, ...] = conn.recv()
        except (EOFError, OSError):
            message = ("done",)  # the worker died: what it sent is kept, the rest is lost and shows as shortfall
            asyncio.get_running_loop().remove_reader(conn.fileno())
        if message[0] == "ready" and not ready.done():
            ready.set_result(None)
        elif message[0] == "second":
            add(share, Sample(message[1], Tally.from_wire(message[2])))
        elif message[0] == "done" and not done.done():
            finished(share)
            done.set_result(None)

    def stop(self) -> None:
        """Ask every worker to stop (on the engine loop)."""
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(("stop",))

    async def wait(self, timeout_s: float) -> None:
        """Wait (bounded) until every worker reported done."""
        if self._done:
            await asyncio.wait(self._done, timeout=timeout_s)

    def close(self) -> None:
        """Stop listening and make sure no worker outlives the run."""
        loop = asyncio.get_running_loop()
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(conn.fileno())
            conn.close()
        for proc in self._procs:
            proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        self._conns, self._procs = [], []
