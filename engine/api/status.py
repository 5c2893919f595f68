"""/api/health, /api/metrics (the seed's SystemMetrics) and /api/overview."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from contract.responses import HealthOut, OverviewOut, SystemMetricsOut
from contract.roles import Role
from db import queries
from engine.api.context import runtime
from engine.api.logs import log_json
from engine.api.routing import ApiBlueprint
from engine.api.scaling import scaling_out
from engine.api.storage import shards_json
from engine.api.traffic import breaker_out, breakers_of, load_balancer_out, resilience_out

__all__ = ["api", "overview_json"]

api = ApiBlueprint("status", tag="status")


def overview_json(o: queries.Overview) -> dict[str, Any]:
    """The seed's systemOverview, plus totals; unknown figures are null."""
    return {
        "activeServices": o.active_services,
        "totalServices": o.total_services,
        "requestsPerMin": o.requests_per_min,
        "avgResponseTime": o.avg_response_time_ms,
        "errorRate": o.error_rate,
        "systemStatus": o.system_status,
        "cpuPercent": o.cpu_percent,
        "memoryMb": o.memory_mb,
    }


@api.route("GET", "/api/health", summary="Engine and database status (no auth)", role=None,
           ok=(200, HealthOut), same_shape=(503,))
def health() -> ResponseReturnValue:
    """Engine and database status; 503 while the database is unreachable."""
    rt = runtime()
    database: dict[str, Any] = {"embedded": rt.settings.database_url is None}
    try:
        with rt.sessions() as session:
            session.execute(text("SELECT 1"))
        database["status"] = "up"
    except Exception as exc:
        database["status"] = "down"
        database["error"] = type(exc).__name__
    w = rt.writer.status()
    lat = rt.writer.write_latency(60.0)
    ok = database["status"] == "up" and w.database_ok
    body = {
        "status": "ok" if ok else "degraded",
        "engine": {
            "status": "up",
            "startedAt": rt.started_at.isoformat(),
            "uptimeSeconds": (rt.clock.now() - rt.started_at).total_seconds(),
            "services": len(rt.registry.services()),
        },
        "database": database,
        "writer": {
            "databaseOk": w.database_ok,
            "pending": w.pending,
            "written": w.written,
            "dropped": w.dropped,
            "rejected": w.rejected,
            "lastError": w.last_error,
            "lastSuccess": w.last_success.isoformat() if w.last_success else None,
            "writeLatencyMs": {"windowSeconds": 60, "batches": lat.batches, "p50": lat.p50_ms, "p95": lat.p95_ms,
                               "max": lat.max_ms},
        },
        "simulations": {"active": rt.chaos.active_count()},
    }
    return jsonify(body), 200 if database["status"] == "up" else 503


@api.route("GET", "/api/overview", summary="systemOverview", role=Role.VIEWER, ok=(200, OverviewOut),
           errors=(503,))
def overview() -> ResponseReturnValue:
    """systemOverview alone."""
    rt = runtime()
    with rt.sessions() as session:
        return jsonify(overview_json(queries.overview(session, rt.clock.now())))


@api.route("GET", "/api/metrics", summary="The seed's SystemMetrics", role=Role.VIEWER,
           ok=(200, SystemMetricsOut), errors=(503,))
def system_metrics() -> ResponseReturnValue:
    """The seed's SystemMetrics. Parts owned by later capabilities are null or empty until they exist."""
    rt = runtime()
    with rt.sessions() as session:
        o = queries.overview(session, rt.clock.now())
        logs = [log_json(r) for r in queries.recent_logs(session, queries.LogFilter(limit=20))]
    test = rt.loadtests.status()
    return jsonify({
        "systemOverview": overview_json(o),
        "loadBalancer": load_balancer_out(rt).model_dump(mode="json"),
        "circuitBreakers": [breaker_out(b).model_dump(mode="json") for b in breakers_of(rt)],
        "scaling": scaling_out(rt).model_dump(mode="json", by_alias=True),
        "shards": shards_json(rt),
        "resilience": resilience_out(rt).model_dump(mode="json"),
        "loadTest": None if test.status == "idle" else test.model_dump(mode="json", by_alias=True),
        "recentLogs": logs,
    })
