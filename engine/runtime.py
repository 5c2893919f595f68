"""The composition root: every capability built once over one database, started and stopped in one place.

`Runtime.open(settings)` opens the database (an embedded server when DATABASE_URL is unset), builds the
capabilities and readies them: the batch writer running, the registry, breakers, open incidents and SLOs loaded,
work that a crash cut off marked interrupted. `start()` adds the demo fleet, the managed instances, the engine
loop with its jobs and, given a WSGI app, the REST API; `stop()` ends them in reverse. The root wires; the
capabilities do the work.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import secrets
import sys
import uuid
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from contract.settings import Settings
from contract.states import HealthState
from db import alerting as alert_queries
from db import cluster, history, queries
from db import experiments as experiment_queries
from engine import VERSION
from engine.alerting.conditions import LiveState
from engine.alerting.delivery import NotifyPolicy
from engine.alerting.evaluator import AlertEvaluator
from engine.alerting.incidents import IncidentBook
from engine.alerting.model import Rule
from engine.alerting.notifier import ChannelNotifier
from engine.alerting.silences import SilenceBook
from engine.alerting.slo import SloBook
from engine.chaos.faults import FaultLayer
from engine.chaos.simulations import ChaosManager
from engine.clock import Clock, SystemClock
from engine.cluster import Leadership, Membership, sweep_gone_engines
from engine.experiments.runner import ExperimentManager
from engine.fleet.demo import DEMO_SERVICES, start_demo_fleet
from engine.fleet.managed import ManagedFleet
from engine.fleet.registry import Registry
from engine.health.checker import HealthChecker, ScheduleCounts
from engine.health.collector import SCRAPE_BODY_BYTES, Collector
from engine.health.probe import check_fetch
from engine.hosting import ApiLimits, ApiServer, EngineLoop
from engine.loadtest.manager import LoadTestLimits, LoadTestManager
from engine.scaling.manager import ScalingManager
from engine.scheduler import JobScheduler
from engine.security.ratelimit import RateLimiter
from engine.security.revocation import TokenVersions
from engine.security.secretfile import read_or_create
from engine.security.ssrf import Policy
from engine.security.tokens import TokenIssuer
from engine.security.users import FirstAdmin, ensure_admin
from engine.store.database import Database
from engine.store.logs import DatabaseLogHandler, event_logger
from engine.store.maintenance import StorageMaintenance
from engine.store.outage import UNAVAILABLE
from engine.store.writer import BatchWriter
from engine.telemetry.exporter import Telemetry
from engine.traffic.breakers import BreakerBook
from engine.traffic.listener import ListenerLimits, ProxyListener
from engine.traffic.outlier import OutlierEjector
from engine.traffic.recorder import TrafficRecorder
from engine.traffic.resilience import ResilienceCounters, RetryBudget
from engine.traffic.router import Router
from engine.traffic.tokengate import TokenGate
from engine.traffic.window import RollingWindow
from engine.traffic.wire import HttpClient

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["Runtime"]

T = TypeVar("T")

log = event_logger("engine")
HEALTH_IDLE_S = 120.0  # a check's or scrape's kept connection unused this long is closed
FREEZE_FROM = 1000  # instances from which the heap is frozen once a fleet is connected (Runtime._freeze_heap)
# The engine loop and the API's waitress threads share one GIL. A busy loop (a saturated traffic listener) holds
# it until a waiting thread's switch interval runs out, and an API request waits for it at each of its hand-offs
# (reader thread -> worker, every database round trip, the write): at Python's default 5 ms that is up to 5 ms a
# hand-off. 1 ms bounds each to 1 ms; a thread that waits for nothing asks for no switch, so it costs nothing then.
GIL_SWITCH_INTERVAL_S = 0.001


class Runtime:
    """The running engine: settings, clock, database and every capability, each built exactly once."""

    def __init__(  # noqa: PLR0915 - the composition root: one statement per capability it builds
        self, settings: Settings, database: Database, tokens: TokenIssuer, first_admin: FirstAdmin | None,
        clock: Clock | None = None,
    ) -> None:
        """Build every capability over an open database; nothing is read, written or started here."""
        s = settings
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.started_at = self.clock.now()
        self.database = database
        self.sessions = database.sessions
        self.telemetry = Telemetry(VERSION)

        # cluster: this start's id, its membership row and heartbeat, and whether it leads (the singleton jobs
        # below act only on the leader)
        self.membership = Membership.for_engine(database.conninfo, s.api_host, s.api_port,
                                                heartbeat_s=s.cluster_heartbeat_s, lease_s=s.cluster_lease_s)

        # store: every row the engine emits goes through the writer; the logs of `mm.*` too
        self.writer = BatchWriter(self.sessions, self.clock, flush_interval=s.flush_interval,
                                  max_buffer=s.writer_max_buffer, batch_size=s.writer_batch_rows,
                                  on_commit=self.telemetry.observe_db_write)
        self.storage = StorageMaintenance(self.sessions, self.clock, retention_days=s.retention_days,
                                          ahead_days=s.partitions_ahead,
                                          history_retention_days=s.health_retention_days,
                                          audit_retention_days=s.audit_retention_days)
        self._log_handler = DatabaseLogHandler(self.writer, self.clock)

        # security
        self.tokens = tokens
        self.token_versions = TokenVersions(self.sessions, self.clock)
        # the dashboard this engine starts proves itself with it, and only then may name its browser's address
        self.dashboard_secret = secrets.token_urlsafe(32)
        self.first_admin = first_admin
        self.api_limiter = RateLimiter(s.rate_limit, s.rate_burst, self.clock)
        self.proxy_limiter = RateLimiter(s.proxy_rate_limit, s.proxy_rate_burst, self.clock)
        self.login_limiter = RateLimiter(1.0 / s.login_refill, s.login_attempts, self.clock)

        # health: checks and scrapes on one client (a kept-alive connection per instance serves both)
        self.registry = Registry()
        # every routed request feeds the alert rules' rolling window (the last hour) and the SLO counters
        self.window = RollingWindow(self.clock)
        self.slos = SloBook(self.writer, self.clock, self.sessions)
        self.traffic = TrafficRecorder(listeners=(self.window.add, self.slos.record),
                                       batch_listeners=(self.window.add_successes, self.slos.record_successes))
        self.faults = FaultLayer(self.clock)
        instances = Policy.instances(s.instance_allowlist)  # where checks, scrapes, the proxy and load tests may go
        self._client = HttpClient(instances, per_host=4, connect_timeout=s.health_timeout, timeout=s.health_timeout,
                                  idle_timeout=HEALTH_IDLE_S, max_body=SCRAPE_BODY_BYTES)
        self.health = HealthChecker(self.registry, check_fetch(self._client), self.writer, self.clock,
                                    timeout=s.health_timeout, degraded_ms=s.degraded_ms, fall=s.fall, rise=s.rise,
                                    concurrency=s.health_concurrency, faults=self.faults,
                                    recent=s.health_recent_checks)
        self.collector = Collector(self.registry, self._client, self.writer, self.traffic, self.clock,
                                   bucket_seconds=s.collect_interval, timeout=s.health_timeout,
                                   concurrency=s.health_concurrency)

        # traffic: the router sends on the engine loop
        self.loop = EngineLoop(use_uvloop=s.engine_uvloop)
        self.breakers = BreakerBook(self.clock, self.writer)
        self.ejector = OutlierEjector(self.clock, s.eject_consecutive, s.eject_base_s, s.eject_max_percent)
        self.resilience = ResilienceCounters(self.clock)
        self.retry_budget = RetryBudget(s.retry_budget_percent, s.retry_budget_min)
        self.router = Router(self.registry, self.health.state_of, self.breakers, self.ejector, self.traffic,
                             self.resilience, self.retry_budget, self.clock, algorithm=s.lb_algorithm,
                             timeout_s=s.route_timeout, max_retries=s.route_retries, policy=instances,
                             max_body_bytes=s.route_max_body, faults=self.faults,
                             health_generation=functools.partial(getattr, self.health, "generation"))

        # alerting: rules evaluated from the live state above (never the database), silences in memory, incidents
        # from alert changes; every notification sent by its channel's own worker on the loop, retried, recorded
        self.silences = SilenceBook(self.clock, self.sessions)
        self.incidents = IncidentBook(self.writer, self.clock)
        self.notifier = ChannelNotifier(
            self.writer, self.clock,
            NotifyPolicy(s.notify_timeout, s.notify_backoff, s.notify_backoff_max, s.notify_max_attempts,
                         s.notify_queue),
            s.public_base_url, Policy.channels(s.instance_allowlist))
        self._database_ok = True  # the last probe's answer (see _probe_database)
        self._due_timer: asyncio.TimerHandle | None = None  # the evaluation set for an alert's due time
        self.alerting = AlertEvaluator(
            LiveState(self.registry.services, self.health_of, self.breakers.state_of, self.window,
                      self._database_state, self.slos),
            self.writer.submit, self.clock, silences=self.silences, notifier=self.notifier,
            incidents=self.incidents)

        # managed processes, simulations, scaling, load tests
        self.fleet = ManagedFleet(self.sessions, self.reload_registry, self.health.mark_healthy,
                                  self._instance_in_flight, port_base=s.demo_port_base, log_dir=s.data_dir,
                                  ready_timeout_s=s.scale_ready_timeout, drain_timeout_s=s.scale_drain_timeout)
        self.chaos = ChaosManager(self.sessions, self.registry, self.faults, self.writer, self.clock,
                                  conninfo=database.conninfo, memory_cap_mb=s.memory_leak_cap_mb,
                                  max_duration_ms=s.simulation_max_ms, kill=self.fleet.kill, silences=self.silences,
                                  # a silence outlasts its fault until health can have risen and alerts resolved
                                  silence_grace_s=(s.rise + 1) * s.health_interval + 2 * s.alert_interval,
                                  engine_id=self.membership.identity.id)
        self.scaling = ScalingManager(self.sessions, self.registry, self.fleet, self.clock, self.traffic.in_flight,
                                      self.collector.latest.get)
        self.loadtests = LoadTestManager(
            self.registry, self.router, self.sessions, self.writer, self.clock, self.loop.run_soon,
            LoadTestLimits(s.max_rps, s.max_duration, s.max_users, s.loadtest_backlog_s, s.loadtest_process_rps,
                           drain_s=s.route_timeout * (s.route_retries + 1) + 1.0, uvloop=s.engine_uvloop),
            engine_id=self.membership.identity.id,
        )
        self.experiments = ExperimentManager(self.registry, self.router, self.loadtests, self.chaos, self.scaling,
                                             self.sessions, self.clock, self.loop.run_soon, self.health_of)

        # jobs on the loop: checks run each at its phase (HealthChecker.run, started with the jobs); the
        # health-check job settles each interval (aggregates, closed minutes, overruns) and evaluates alerts
        self._health_task: asyncio.Task[None] | None = None
        self._fleet_seen: object = None  # the registry snapshot of the last interval, and the last one frozen
        self._frozen_fleet: object = None
        self.jobs = JobScheduler([
            ("health-check", self._check_health, s.health_interval, 0.0),
            ("collect-metrics", self.collector.run_once, s.collect_interval, s.collect_interval / 2),
            ("simulation-expiry", self._expire_simulations, 0.25, 0.25),
            ("supervise-instances", self._supervise, 1.0, 1.0),
            ("autoscale-sample", self._sample_in_flight, self.scaling.sample_s, 0.0),
            ("autoscale", self._autoscale, s.autoscale_interval, s.autoscale_interval),
            ("storage-maintenance", self._maintain_storage, s.maintenance_interval, s.maintenance_interval),
            ("slo-minutes", self._close_slo_minutes, 10.0, 10.0),
            ("slo-retention", self._trim_slo_minutes, 3600.0, 60.0),
            ("alert-evaluation", self._evaluate_alerts, s.alert_interval, s.alert_interval),
            ("database-probe", self._probe_database, s.alert_interval, 0.0),
            ("cluster-upkeep", self._cluster_upkeep, s.cluster_lease_s, s.cluster_lease_s),
        ], observe=self.telemetry.observe_job)
        self.proxy = ProxyListener(
            self.router, TokenGate(tokens, self.token_versions, self.clock), self.proxy_limiter, s.api_host,
            s.proxy_port, ListenerLimits(max_header_bytes=s.max_header_bytes, max_body_bytes=s.route_max_body,
                                         idle_timeout_s=s.api_idle_timeout, connections=s.proxy_connection_limit))
        self.api = ApiServer(s.api_host, s.api_port, ApiLimits(
            threads=s.api_threads, connections=s.api_connection_limit, idle_timeout_s=s.api_idle_timeout,
            max_header_bytes=s.max_header_bytes, max_body_bytes=s.max_body_bytes))
        self.telemetry.watch(self)

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None) -> Runtime:
        """A built and readied engine (see the module docstring); nothing runs in the background but the writer."""
        clock = clock or SystemClock()
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # secrets, instance logs, an embedded server: all here
        database = Database.open(settings)
        try:
            secret = (settings.jwt_secret.get_secret_value() if settings.jwt_secret
                      else read_or_create(settings.data_dir / "jwt_secret"))
            with database.sessions.begin() as session:
                password = settings.admin_password.get_secret_value() if settings.admin_password else None
                first_admin = ensure_admin(session, settings.data_dir, password)
            runtime = cls(settings, database, TokenIssuer(secret, settings.token_ttl, clock), first_admin, clock)
        except BaseException:
            database.close()
            raise
        try:
            runtime._ready()
        except BaseException:
            runtime.stop()
            raise
        return runtime

    def _ready(self) -> None:
        self.storage.run_once()  # today's partition exists before the first write
        self.writer.start()
        self._log_handler.attach()
        with self.sessions.begin() as session:
            # a live engine's work is its own (another engine on this database); a gone one's is cut off
            tests, sims = queries.mark_interrupted(session, self.clock.now(), self.settings.cluster_lease_s)
            runs = experiment_queries.mark_runs_interrupted(session, self.clock.now())
            closed = history.close_open_periods(session, self.clock.now())
        if tests or sims:
            log.warning("marked %d load test(s) and %d simulation(s) interrupted by the last stop", tests, sims)
        if runs:
            log.warning("marked %d experiment run(s) interrupted by the last stop", runs)
        if any(closed):
            log.warning("health history: %d instance(s) and %d service(s) unknown from their last check before "
                        "the last stop", *closed)
        self.reload_registry()
        if self.first_admin is not None:
            log.warning("no users existed: created the admin user %r", self.first_admin.username)
        with self.sessions() as session:
            self.breakers.load(session)
            self.incidents.load(session)
        with self.sessions.begin() as session:
            self.notifier.load(session)
            # unfinished deliveries carry no engine: while another engine is live they may be its own, queued
            # in its memory, and resuming them here would send them twice
            others = cluster.live_count(session, self.settings.cluster_lease_s)
            queued, failed = (0, 0) if others else self.notifier.resume(session)
        if others:
            log.warning("%d other engine(s) live on this database: unfinished notifications are left to them", others)
        if queued or failed:
            log.warning("notifications the last stop left unfinished: %d resumed, %d failed (older than the retry "
                        "horizon or their channel gone)", queued, failed)
        self._ready_alerting()

    def _ready_alerting(self) -> None:
        """Rules and silences loaded, the alerts open at the last stop continued; silences of simulations a stop
        cut off end now."""
        with self.sessions.begin() as session:
            alert_queries.end_silences_of_ended_simulations(session, self.clock.now())
        with self.sessions() as session:
            self.alerting.load_rules(Rule.of_row(r) for r in alert_queries.list_rules(session))
            restored = self.alerting.restore(alert_queries.open_alerts(session))
        self.silences.reload()
        if restored:
            log.info("continuing %d pending or firing alert(s)", restored)

    # -- what the API and the capabilities call ------------------------------------------------

    @property
    def engine_id(self) -> uuid.UUID:
        """This start's id in the cluster (a new one each start)."""
        return self.membership.identity.id

    @property
    def leadership(self) -> Leadership:
        """Whether this engine leads the cluster now, and its fencing term."""
        return self.membership.leadership

    def health_of(self, instance_id: int) -> HealthState:
        """An instance's damped health (unknown before its first check)."""
        return self.health.state_of(instance_id)

    def health_schedule(self) -> ScheduleCounts:
        """What the phased health-check schedule did so far (the exporter reads it)."""
        return self.health.counts

    def reload_registry(self) -> None:
        """Refresh the in-memory fleet from the database (after every API change)."""
        with self.sessions() as session:
            self.registry.load(session)
            self.slos.load(session)  # a service renamed or removed takes its SLO counters along

    def reload_channels(self) -> None:
        """Refresh the notifier's channels from the database (after every API change)."""
        with self.sessions() as session:
            self.notifier.load(session)

    def run_soon(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run a coroutine on the engine loop from another thread (503 when the loop is not running)."""
        return self.loop.run_soon(coro)

    def _database_state(self) -> tuple[bool, int]:
        # unreachable when the writer's last batch failed or the last probe did (the writer alone would not notice
        # an outage while it has nothing to write)
        status = self.writer.status()
        return status.database_ok and self._database_ok, status.pending

    def _instance_in_flight(self, instance_id: int) -> int:
        target = self.router.targets.get(instance_id)  # read only: the loop owns it
        return target.in_flight if target is not None else 0

    # -- start and stop ---------------------------------------------------------------------

    def start(self, *, demo: bool = False, app: WSGIApplication | None = None) -> None:
        """The demo fleet (with demo), the managed instances, the loop with its jobs, and the API (given its app)."""
        if demo:
            start_demo_fleet(self.sessions, self.fleet, self.settings.demo_seed)
        self.fleet.restore(skip=frozenset(DEMO_SERVICES) if demo else frozenset())
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self.membership.start()  # registered before the jobs: a lone engine leads from their first run
        self.loop.start()
        self.loop.run_soon(self._start_jobs()).result(10)
        self.loop.run_soon(self.proxy.start()).result(10)
        self.membership.set_proxy_url(self.proxy.url)
        if app is not None:
            self.api.start(app)
            if self.settings.metrics_token is None:
                log.warning("METRICS_TOKEN is unset: GET /metrics answers without a token (it names the services "
                            "and instance URLs the engine watches); set it to require a scrape token")
        log.info("engine started", extra={"meta": {"apiPort": self.settings.api_port, "proxyUrl": self.proxy.url,
                                                    "demo": demo}})

    def stop(self) -> None:
        """Stop everything in reverse; buffered rows are written before the database closes. A second call does
        nothing more."""
        try:
            if self.loop.running:  # traffic first: no new connection, requests in flight finish briefly
                self.loop.run_soon(self.proxy.stop()).result(self.proxy.limits.grace_s + 3)
        finally:
            self._stop_api()

    def _stop_api(self) -> None:
        try:
            self.api.stop()
        finally:
            try:
                self.chaos.stop_all()  # faults lifted, memory freed, overload cancelled; rows say "stopped"
            finally:
                self._stop_rest()

    def _stop_rest(self) -> None:
        if self.loop.running:
            try:
                self.loop.run_soon(self._stop_jobs()).result(5)
            finally:
                self.loop.stop()
        self.membership.stop()  # after the jobs: the leader has stopped acting before it gives up the lead
        self.fleet.stop_all()
        self.slos.close_all()  # the minute being counted is written; a restart adds to it
        self.health.close()  # after the last round: states become unknown, the open minute is written
        if self.writer.running:
            log.info("engine stopped")
            self.writer.stop()
        self._log_handler.detach()
        self.database.close()

    async def _start_jobs(self) -> None:
        await self.router.start()
        await self.notifier.start()
        self._health_task = asyncio.get_running_loop().create_task(self.health.run(self.settings.health_interval))
        self.jobs.start()

    async def _stop_jobs(self) -> None:
        await self.experiments.shutdown()  # its load, steps and faults end first
        await self.loadtests.shutdown()
        self.jobs.shutdown()
        if self._due_timer is not None:
            self._due_timer.cancel()
        await self.notifier.stop()  # before the sweep below: an attempt cut off is recorded as such
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.close()
        await self.router.close()

    # -- the jobs that run a capability's blocking work off the loop -------------------------

    async def _expire_simulations(self) -> None:
        await asyncio.to_thread(self.chaos.expire_due)  # ends write a row

    async def _supervise(self) -> None:
        await asyncio.to_thread(self.fleet.supervise)  # a replacement waits for its health

    async def _sample_in_flight(self) -> None:
        self.scaling.sample()

    async def _autoscale(self) -> None:
        if not self.leadership.is_leader:
            return
        await asyncio.to_thread(self.scaling.run_period, self.settings.autoscale_interval)

    async def _maintain_storage(self) -> None:
        if not self.leadership.is_leader:
            return
        await asyncio.to_thread(self.storage.run_scheduled)

    async def _close_slo_minutes(self) -> None:
        self.slos.close_minutes()  # queues rows only: no need to leave the loop

    async def _trim_slo_minutes(self) -> None:
        if not self.leadership.is_leader:
            return
        await asyncio.to_thread(self.slos.trim_scheduled)

    async def _check_health(self) -> None:
        self.health.settle()
        self._freeze_heap()
        self._evaluate()  # a state change is judged within an interval, not up to an alert interval later

    def _freeze_heap(self) -> None:
        """Once a fleet has been checked for a whole interval (its connections made), collect once and move every
        object alive to the collector's permanent generation: later collections no longer walk the fleet's
        objects (tens per instance), so a full collection does not stall the loop for a large fleet's checks. Only
        for fleets of FREEZE_FROM instances or more: a small one's collections are short anyway, and what is frozen
        is never collected if it later becomes cyclic garbage."""
        fleet = self.registry.services()
        if fleet is self._frozen_fleet or sum(len(s.instances) for s in fleet) < FREEZE_FROM:
            return
        if fleet is not self._fleet_seen:
            self._fleet_seen = fleet  # changed: freeze at the next interval, once its instances are connected
            return
        gc.collect()
        gc.freeze()
        self._frozen_fleet = fleet  # a state change is judged at once, not up to an alert interval later

    async def _evaluate_alerts(self) -> None:
        self._evaluate()

    def _evaluate(self) -> None:
        """One evaluation on the loop (it reads the rolling window the router feeds there); when an alert is due
        to fire or repeat before the next regular round, one more evaluation is set for that moment. Only the
        leader evaluates (and a lone leader through an outage of the database: see engine.cluster.leadership)."""
        if not self.leadership.leads_through_outage:
            return
        self.alerting.evaluate()
        due = self.alerting.next_due()
        if self._due_timer is not None:
            self._due_timer.cancel()
            self._due_timer = None
        if due is not None:
            # past due and still pending (its condition unknown this round): the regular rounds take it
            delay = (due - self.clock.now()).total_seconds()
            if 0 < delay < self.settings.alert_interval:
                self._due_timer = asyncio.get_running_loop().call_later(delay + 0.005, self._evaluate)

    async def _cluster_upkeep(self) -> None:
        if self.leadership.is_leader:
            await asyncio.to_thread(sweep_gone_engines, self.sessions, self.clock, self.settings.cluster_lease_s)

    async def _probe_database(self) -> None:
        self._database_ok = await asyncio.to_thread(self._ping)

    def _ping(self) -> bool:
        try:
            with self.sessions() as session:
                queries.ping(session)
        except UNAVAILABLE:
            return False
        return True
