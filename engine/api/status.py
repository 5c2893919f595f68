"""/api/health, /api/overview and /api/metrics (every capability's summary in one answer)."""

from __future__ import annotations

from flask import Response

from contract.responses import (
    DatabaseHealthOut,
    EngineStatusOut,
    HealthOut,
    OverviewOut,
    SimulationCountOut,
    SystemMetricsOut,
    WriteLatencyOut,
    WriterOut,
)
from contract.roles import Role
from contract.states import Availability, EngineHealth
from db import queries
from engine.api.context import runtime
from engine.api.logs import log_out
from engine.api.routing import ApiBlueprint, serialize
from engine.api.scaling import scaling_out
from engine.api.storage import shards_out
from engine.api.traffic import breaker_out, breakers_of, load_balancer_out, resilience_out
from engine.runtime import Runtime

__all__ = ["api", "overview_out"]

api = ApiBlueprint("status", tag="status")
WRITE_LATENCY_WINDOW_S = 60
RECENT_LOGS = 20


def overview_out(o: queries.Overview) -> OverviewOut:
    """systemOverview from the overview query; unknown figures are null."""
    return OverviewOut(
        activeServices=o.active_services,
        totalServices=o.total_services,
        requestsPerMin=o.requests_per_min,
        avgResponseTime=o.avg_response_time_ms,
        errorRate=o.error_rate,
        systemStatus=o.system_status,
        cpuPercent=o.cpu_percent,
        memoryMb=o.memory_mb,
    )


def _database(rt: Runtime) -> DatabaseHealthOut:
    embedded = rt.settings.database_url is None
    try:
        with rt.sessions() as session:
            queries.ping(session)
    except Exception as exc:  # any failure to answer is "down"; the name of the exception says which
        return DatabaseHealthOut(embedded=embedded, status=Availability.DOWN, error=type(exc).__name__)
    return DatabaseHealthOut(embedded=embedded, status=Availability.UP)


def _writer(rt: Runtime) -> WriterOut:
    w = rt.writer.status()
    lat = rt.writer.write_latency(float(WRITE_LATENCY_WINDOW_S))
    return WriterOut(
        databaseOk=w.database_ok,
        pending=w.pending,
        written=w.written,
        dropped=w.dropped,
        rejected=w.rejected,
        # the kind of failure only: its text names hosts, sockets and users, and this answer needs no login
        lastError=w.last_error.split(":", 1)[0] if w.last_error else None,
        lastSuccess=w.last_success.isoformat() if w.last_success else None,
        writeLatencyMs=WriteLatencyOut(windowSeconds=WRITE_LATENCY_WINDOW_S, batches=lat.batches, p50=lat.p50_ms,
                                       p95=lat.p95_ms, max=lat.max_ms),
    )


@api.route("GET", "/api/health", summary="Engine and database status (no auth)", role=None,
           ok=(200, HealthOut), same_shape=(503,))
def health() -> Response:
    """Engine, database, writer and simulations; 503 while the database is unreachable."""
    rt = runtime()
    database = _database(rt)
    writer = _writer(rt)
    up = database.status is Availability.UP
    body = HealthOut(
        status=EngineHealth.OK if up and writer.databaseOk else EngineHealth.DEGRADED,
        engine=EngineStatusOut(
            status=Availability.UP,
            startedAt=rt.started_at.isoformat(),
            uptimeSeconds=(rt.clock.now() - rt.started_at).total_seconds(),
            services=len(rt.registry.services()),
        ),
        database=database,
        writer=writer,
        simulations=SimulationCountOut(active=rt.chaos.active_count()),
    )
    return serialize(body, 200 if up else 503)


@api.route("GET", "/api/overview", summary="Service counts and the last minute's traffic", role=Role.VIEWER,
           ok=(200, OverviewOut), errors=(503,))
def overview() -> OverviewOut:
    """systemOverview alone."""
    rt = runtime()
    with rt.sessions() as session:
        return overview_out(queries.overview(session, rt.clock.now()))


@api.route("GET", "/api/metrics", summary="Overview, balancer, breakers, scaling, shards, resilience, load test "
           "and recent logs in one answer", role=Role.VIEWER, ok=(200, SystemMetricsOut), errors=(503,))
def system_metrics() -> SystemMetricsOut:
    """Every capability's summary; loadTest is null when no run is known."""
    rt = runtime()
    with rt.sessions() as session:
        o = queries.overview(session, rt.clock.now())
        logs = [log_out(r) for r in queries.recent_logs(session, queries.LogFilter(limit=RECENT_LOGS))]
    test = rt.loadtests.status()
    return SystemMetricsOut(
        systemOverview=overview_out(o),
        loadBalancer=load_balancer_out(rt),
        circuitBreakers=[breaker_out(b) for b in breakers_of(rt)],
        scaling=scaling_out(rt),
        shards=shards_out(rt),
        resilience=resilience_out(rt),
        loadTest=None if test.status == "idle" else test,
        recentLogs=logs,
    )
