"""Health history of a service: uptime over a window, daily uptime bars, the latest checks, check latency.

Uptime seconds come from the state changes, which are written as they happen, so they run up to now; check
counts come from the per-minute rollup and include closed minutes only (up to a minute behind). The latest
checks come from the checker's memory (this process), not from the database.
"""

from __future__ import annotations

from datetime import UTC, timedelta

from sqlalchemy.orm import Session

from contract.errors import NotFound
from contract.history import (
    CheckLatencyOut,
    CheckLatencyPointOut,
    CheckOut,
    CheckQuery,
    DailyUptimeOut,
    DailyUptimeQuery,
    InstanceUptimeOut,
    UptimeOut,
    UptimeQuery,
)
from contract.roles import Role
from db import history, queries
from db.models import Service
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint

__all__ = ["api"]

api = ApiBlueprint("history", tag="history")


def _service(session: Session, service_id: int) -> Service:
    service = queries.get_service(session, service_id)
    if service is None:
        raise NotFound("service", service_id)
    return service


def _grace() -> timedelta:
    return history.grace_for(runtime().settings.health_interval)


@api.route("GET", "/api/services/<int:service_id>/uptime", summary="Uptime of a service and its instances",
           role=Role.VIEWER, query=UptimeQuery, ok=(200, UptimeOut), errors=(400, 401, 404, 503))
def uptime(service_id: int, query: UptimeQuery) -> UptimeOut:
    """Up (healthy or degraded) over observed time in the window ending now; unknown time counts neither way."""
    rt = runtime()
    end = rt.clock.now()
    start = end - query.window.span
    with rt.sessions() as session:
        service = _service(session, service_id)
        instances = [(i.id, i.url) for i in service.instances]
        overall = history.service_availability(session, service_id, start, end, _grace())
        each = history.instance_availability(session, service_id, [i for i, _ in instances], start, end, _grace())
        checks = history.window_checks(session, service_id, start, end)
    return UptimeOut(
        serviceId=service_id, window=query.window, from_=start.isoformat(), to=end.isoformat(),
        uptimePercent=overall.uptime_percent, checks=sum(checks.values()), downtimeSeconds=overall.down_s,
        observedSeconds=overall.observed_s, incidents=overall.incidents,
        instances=[InstanceUptimeOut(id=iid, url=url, uptimePercent=each[iid].uptime_percent,
                                     checks=checks.get(iid, 0), downtimeSeconds=each[iid].down_s,
                                     observedSeconds=each[iid].observed_s) for iid, url in instances],
    )


@api.route("GET", "/api/services/<int:service_id>/uptime/daily", summary="Uptime per UTC day, oldest first",
           role=Role.VIEWER, query=DailyUptimeQuery, ok=(200, list[DailyUptimeOut]), errors=(400, 401, 404, 503))
def daily_uptime(service_id: int, query: DailyUptimeQuery) -> list[DailyUptimeOut]:
    """`days` bars ending today (so far); uptimePercent null for a day with nothing observed."""
    rt = runtime()
    now = rt.clock.now()
    last = now.astimezone(UTC).date()
    first = last - timedelta(days=query.days - 1)
    with rt.sessions() as session:
        _service(session, service_id)
        days = history.daily_availability(session, service_id, first, last, now, _grace())
    return [DailyUptimeOut(day=d.isoformat(), uptimePercent=a.uptime_percent, checks=n, downtimeSeconds=a.down_s,
                           observedSeconds=a.observed_s, incidents=a.incidents) for d, (a, n) in days.items()]


@api.route("GET", "/api/services/<int:service_id>/checks", summary="The latest check results, newest first",
           role=Role.VIEWER, query=CheckQuery, ok=(200, list[CheckOut]), errors=(400, 401, 404, 503))
def checks(service_id: int, query: CheckQuery) -> list[CheckOut]:
    """From the checker's memory: at most HEALTH_RECENT_CHECKS per instance, empty after a restart."""
    rt = runtime()
    with rt.sessions() as session:
        _service(session, service_id)
    return [CheckOut(instanceId=c.instance_id, at=c.at.isoformat(), state=c.state, latencyMs=c.latency_ms,
                     statusCode=c.status_code, error=c.error) for c in rt.health.recent(service_id, query.limit)]


@api.route("GET", "/api/services/<int:service_id>/check-latency", summary="Check latency over time (avg and max)",
           role=Role.VIEWER, query=UptimeQuery, ok=(200, CheckLatencyOut), errors=(400, 401, 404, 503))
def check_latency(service_id: int, query: UptimeQuery) -> CheckLatencyOut:
    """Per step (a minute up to 24 h, 15 min for 7 d, an hour for 30 d, a day for 90 d) from the rollups."""
    rt = runtime()
    end = rt.clock.now()
    with rt.sessions() as session:
        _service(session, service_id)
        points = history.latency_series(session, service_id, end - query.window.span, end, query.window.step)
    return CheckLatencyOut(
        serviceId=service_id, window=query.window, stepSeconds=int(query.window.step.total_seconds()),
        points=[CheckLatencyPointOut(at=p.at.isoformat(), checks=p.checks, latencyAvgMs=p.latency_avg_ms,
                                     latencyMaxMs=p.latency_max_ms) for p in points],
    )
