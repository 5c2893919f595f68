"""Builds and wires everything from Settings; start() and stop() in one place."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from cheroot.wsgi import Server as WSGIServer
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from contract.errors import Unavailable
from contract.settings import Settings
from db.models import LoadTest, Simulation
from db.session import EmbeddedPostgres, conninfo, make_engine, make_session_factory, migrate
from engine.chaos.faults import FaultLayer
from engine.chaos.simulations import ChaosManager
from engine.clock import Clock, SystemClock
from engine.fleet.demo import DEMO_SERVICES, start_demo_fleet
from engine.fleet.managed import ManagedFleet
from engine.fleet.registry import Registry
from engine.health.checker import HealthChecker, HealthState
from engine.health.collector import Collector
from engine.loadtest.manager import LoadTestLimits, LoadTestManager
from engine.scaling.manager import ScalingManager
from engine.scheduler import build_scheduler
from engine.security.ratelimit import RateLimiter
from engine.security.secretfile import read_or_create
from engine.security.tokens import TokenIssuer
from engine.security.users import FirstAdmin, ensure_admin
from engine.store.logs import DatabaseLogHandler, event_logger
from engine.store.maintenance import StorageMaintenance
from engine.store.outage import UNAVAILABLE, DatabaseOutage
from engine.store.writer import BatchWriter
from engine.telemetry.exporter import Telemetry
from engine.traffic.breakers import BreakerBook
from engine.traffic.http import make_async_client
from engine.traffic.outlier import OutlierEjector
from engine.traffic.recorder import TrafficRecorder
from engine.traffic.resilience import ResilienceCounters, RetryBudget
from engine.traffic.router import Router

__all__ = ["Runtime"]

T = TypeVar("T")

log = event_logger("engine")


class Runtime:
    """Owns the database, the writer, the registry, the asyncio loop with its jobs and the API server."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.registry = Registry()
        self.traffic = TrafficRecorder()
        self.telemetry = Telemetry(self)  # reads the other parts lazily, at scrape time
        self.database_url: str | None = settings.database_url
        self.started_at = self.clock.now()
        self.demo = False
        self._fleet: ManagedFleet | None = None
        self._scaling: ScalingManager | None = None
        self._embedded: EmbeddedPostgres | None = None
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._writer: BatchWriter | None = None
        self._log_handler: DatabaseLogHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._scheduler: Any = None
        self._server: WSGIServer | None = None
        self._server_thread: threading.Thread | None = None
        self.health: HealthChecker | None = None
        self.collector: Collector | None = None
        self.router: Router | None = None
        self.breakers: BreakerBook | None = None
        self._loadtests: LoadTestManager | None = None
        self._chaos: ChaosManager | None = None
        self.faults = FaultLayer(self.clock)
        self.ejector = OutlierEjector(
            self.clock, settings.eject_consecutive, settings.eject_base_s, settings.eject_max_percent
        )
        self.resilience = ResilienceCounters(self.clock)
        self.retry_budget = RetryBudget(settings.retry_budget_percent, settings.retry_budget_min)
        self.first_admin: FirstAdmin | None = None
        self.api_limiter = RateLimiter(settings.rate_limit, settings.rate_burst, self.clock)
        self.proxy_limiter = RateLimiter(settings.proxy_rate_limit, settings.proxy_rate_burst, self.clock)
        self.login_limiter = RateLimiter(1.0 / settings.login_refill, settings.login_attempts, self.clock)
        self._tokens: TokenIssuer | None = None

    # -- wiring -----------------------------------------------------------------------------

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The session factory (after open())."""
        assert self._sessions is not None, "Runtime.open() first"
        return self._sessions

    @property
    def tokens(self) -> TokenIssuer:
        """Issues and verifies bearer tokens (after open())."""
        assert self._tokens is not None, "Runtime.open() first"
        return self._tokens

    @property
    def writer(self) -> BatchWriter:
        """The batch writer (after open())."""
        assert self._writer is not None, "Runtime.open() first"
        return self._writer

    def open(self) -> None:
        """Database (embedded if no URL), migrations, batch writer, DB log handler, registry."""
        if self.database_url is None:
            self._embedded = EmbeddedPostgres(self.settings.data_dir)
            self.database_url = self._embedded.start()
        self._engine = make_engine(self.database_url)
        migrate(self._engine)
        self._sessions = make_session_factory(self._engine)
        self.storage = StorageMaintenance(
            self._sessions, self.clock, retention_days=self.settings.retention_days,
            ahead_days=self.settings.partitions_ahead,
        )
        self.storage.run_once()  # today's partition exists before the first write
        self._storage_outage = DatabaseOutage("storage maintenance", log)
        self._writer = BatchWriter(
            self._sessions, self.clock,
            flush_interval=self.settings.flush_interval, max_buffer=self.settings.writer_max_buffer,
            batch_size=self.settings.writer_batch_rows,
            on_commit=self.telemetry.observe_db_write,
        )
        self._writer.start()
        self._log_handler = DatabaseLogHandler(self._writer, self.clock)
        mm = logging.getLogger("mm")
        mm.setLevel(logging.INFO)
        mm.addHandler(self._log_handler)
        self._mark_interrupted()
        self.reload_registry()
        self._open_security()
        self.breakers = BreakerBook(self.clock, self._writer)
        with self.sessions() as session:
            self.breakers.load(session)
        s = self.settings
        self.router = Router(
            self.registry, self.health_of, self.breakers, self.ejector, self.traffic, self.resilience,
            self.retry_budget, self.clock, algorithm=s.lb_algorithm, timeout_s=s.route_timeout,
            max_retries=s.route_retries, faults=self.faults,
        )
        self._chaos = ChaosManager(
            self.sessions, self.registry, self.faults, self._writer, self.clock,
            conninfo=conninfo(self.database_url), memory_cap_mb=s.memory_leak_cap_mb,
            max_duration_ms=s.simulation_max_ms, kill=self._kill_instance,
        )
        self._fleet = ManagedFleet(
            self.sessions, self.reload_registry, self._mark_healthy, self._instance_in_flight,
            port_base=s.demo_port_base, log_dir=s.data_dir, ready_timeout_s=s.scale_ready_timeout,
            drain_timeout_s=s.scale_drain_timeout,
        )
        self._scaling = ScalingManager(
            self.sessions, self.registry, self._fleet, self.clock, self.traffic.in_flight,
            lambda name: self.collector.latest.get(name) if self.collector is not None else None,
        )
        self._loadtests = LoadTestManager(
            self.registry, self.router, self.sessions, self._writer, self.clock, self.run_soon,
            LoadTestLimits(s.max_rps, s.max_duration, s.max_users, s.loadtest_backlog_s, s.loadtest_process_rps,
                           drain_s=s.route_timeout * (s.route_retries + 1) + 1.0),
        )

    @property
    def fleet(self) -> ManagedFleet:
        """Managed instance processes (after open())."""
        assert self._fleet is not None, "Runtime.open() first"
        return self._fleet

    @property
    def scaling(self) -> ScalingManager:
        """Scale-up/down and the autoscaler (after open())."""
        assert self._scaling is not None, "Runtime.open() first"
        return self._scaling

    def _mark_healthy(self, instance_id: int) -> None:
        if self.health is not None:
            self.health.mark_healthy(instance_id)

    def _instance_in_flight(self, instance_id: int) -> int:
        target = self.traffic_router.targets.get(instance_id)  # read only: the loop owns it
        return target.in_flight if target is not None else 0

    @property
    def chaos(self) -> ChaosManager:
        """Failure simulations (after open())."""
        assert self._chaos is not None, "Runtime.open() first"
        return self._chaos

    def _kill_instance(self, service: str) -> str | None:
        return self.fleet.kill(service)

    @property
    def loadtests(self) -> LoadTestManager:
        """Load tests (after open(); runs need start())."""
        assert self._loadtests is not None, "Runtime.open() first"
        return self._loadtests

    def health_of(self, instance_id: int) -> HealthState:
        """An instance's damped health (unknown before the checks run)."""
        return self.health.state_of(instance_id) if self.health is not None else HealthState.UNKNOWN

    @property
    def traffic_router(self) -> Router:
        """The traffic path (after open(); it sends only after start())."""
        assert self.router is not None, "Runtime.open() first"
        return self.router

    def _open_security(self) -> None:
        s = self.settings
        secret = s.jwt_secret.get_secret_value() if s.jwt_secret else read_or_create(s.data_dir / "jwt_secret")
        self._tokens = TokenIssuer(secret, s.token_ttl, self.clock)
        password = s.admin_password.get_secret_value() if s.admin_password else None
        with self.sessions.begin() as session:
            self.first_admin = ensure_admin(session, s.data_dir, password)
        if self.first_admin is not None:
            log.warning("no users existed: created the admin user %r", self.first_admin.username)

    def reload_registry(self) -> None:
        """Refresh the in-memory fleet from the database (after every API change)."""
        with self.sessions() as session:
            self.registry.load(session)

    def _mark_interrupted(self) -> None:
        now = self.clock.now()
        with self.sessions.begin() as s:
            tests = _rowcount(
                s.execute(
                    update(LoadTest).where(LoadTest.status == "running").values(status="interrupted", ended_at=now)
                )
            )
            sims = _rowcount(
                s.execute(
                    update(Simulation).where(Simulation.status == "active").values(status="interrupted", ended_at=now)
                )
            )
        if tests or sims:
            log.warning("marked %d load test(s) and %d simulation(s) interrupted by the last stop", tests, sims)

    # -- background parts -------------------------------------------------------------------

    def start(self, *, demo: bool = False, serve_api: bool = True) -> None:
        """open(), then the demo fleet, the asyncio loop with the scheduled jobs, and the API server."""
        self.open()
        if demo:
            self.demo = True
            start_demo_fleet(self.sessions, self.fleet, self.settings.demo_seed)
        self.fleet.restore(skip=frozenset(DEMO_SERVICES) if demo else frozenset())
        self._start_loop()
        if serve_api:
            self._start_api()
        log.info("engine started", extra={"meta": {"apiPort": self.settings.api_port, "demo": demo}})

    def _start_loop(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._loop_thread = threading.Thread(target=loop.run_forever, name="engine-loop", daemon=True)
        self._loop_thread.start()
        asyncio.run_coroutine_threadsafe(self._start_jobs(), loop).result(10)

    async def _start_jobs(self) -> None:
        s = self.settings
        client = make_async_client(max(s.health_timeout, 1.0), max_connections=s.health_concurrency)
        self.health = HealthChecker(
            self.registry, client, self.writer, self.clock,
            timeout=s.health_timeout, degraded_ms=s.degraded_ms, fall=s.fall, rise=s.rise,
            concurrency=s.health_concurrency, faults=self.faults,
        )
        self.collector = Collector(
            self.registry, client, self.writer, self.traffic, self.clock,
            bucket_seconds=s.collect_interval, timeout=s.health_timeout,
        )
        self._client = client
        await self.traffic_router.start()
        self._scheduler = build_scheduler([
            # checks at once (a fresh start shows a status within a second), scrapes half an interval later
            ("health-check", self.health.run_once, s.health_interval, 0.0),
            ("collect-metrics", self.collector.run_once, s.collect_interval, s.collect_interval / 2),
            ("simulation-expiry", self._expire_simulations, 0.25, 0.25),
            ("supervise-instances", self._supervise, 1.0, 1.0),
            ("autoscale-sample", self._sample_in_flight, self.scaling.sample_s, 0.0),
            ("autoscale", self._autoscale, s.autoscale_interval, s.autoscale_interval),
            ("storage-maintenance", self._maintain_storage, s.maintenance_interval, s.maintenance_interval),
        ], observe=self.telemetry.observe_job)
        self._scheduler.start()

    async def _expire_simulations(self) -> None:
        await asyncio.to_thread(self.chaos.expire_due)  # ends write a row: off the loop

    async def _supervise(self) -> None:
        await asyncio.to_thread(self.fleet.supervise)  # a replacement waits for its health: off the loop

    async def _sample_in_flight(self) -> None:
        self.scaling.sample()

    async def _autoscale(self) -> None:
        await asyncio.to_thread(self.scaling.run_period, self.settings.autoscale_interval)

    async def _maintain_storage(self) -> None:
        try:
            await asyncio.to_thread(self.storage.run_once)
        except UNAVAILABLE as exc:  # the next run catches up; one warning per outage
            self._storage_outage.failed(exc)
        else:
            self._storage_outage.succeeded()

    async def _stop_jobs(self) -> None:
        if self._loadtests is not None:
            await self._loadtests.shutdown()
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()
        await self.traffic_router.close()

    def _start_api(self) -> None:
        from engine.api import create_app

        self._server = WSGIServer(
            (self.settings.api_host, self.settings.api_port), create_app(self), numthreads=16,
            server_name="microservice-monitor",
        )
        self._server.prepare()  # binds now: a taken port fails the start, not a thread later
        self._server_thread = threading.Thread(target=self._server.serve, name="api-server", daemon=True)
        self._server_thread.start()

    def run_soon(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run a coroutine on the engine loop from another thread (503 when the loop is not running)."""
        if self._loop is None:
            coro.close()
            raise Unavailable("the engine's traffic loop is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def stop(self) -> None:
        """Stop everything in order; committed and buffered data is written before the DB stops."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        try:
            if self._chaos is not None:
                self._chaos.stop_all()  # faults lifted, memory freed, overload cancelled; rows say "stopped"
        finally:
            self._stop_rest()

    def _stop_rest(self) -> None:
        if self._loop is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._stop_jobs(), self._loop).result(5)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                if self._loop_thread is not None:
                    self._loop_thread.join(5)
                self._loop.close()
                self._loop = None
        if self._fleet is not None:
            self._fleet.stop_all()
        if self._writer is not None:
            log.info("engine stopped")
            self._writer.stop()
            self._writer = None
        if self._log_handler is not None:
            logging.getLogger("mm").removeHandler(self._log_handler)
            self._log_handler = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None
            self.database_url = self.settings.database_url


def _rowcount(result: Any) -> int:
    count: int = result.rowcount
    return count
