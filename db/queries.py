"""Reads for the dashboard and the API: a Session first, values or DataFrames out, never a commit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import pandas as pd
from sqlalchemy import CursorResult, Select, delete, func, or_, select, text, true, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from contract.states import SystemStatus
from db import cluster
from db.models import (
    BreakerTransitionRow,
    LoadTest,
    LoadTestSample,
    LogEntry,
    MetricRow,
    ScalingEvent,
    Service,
    Simulation,
    User,
)

__all__ = [
    "LogFilter",
    "Overview",
    "ServiceBrief",
    "active_simulations",
    "admin_count",
    "breaker_transitions",
    "clear_logs",
    "delete_service",
    "get_service",
    "list_services",
    "list_users",
    "load_test",
    "load_test_samples",
    "load_test_samples_frame",
    "load_tests",
    "log_sources",
    "logs_csv",
    "logs_frame",
    "mark_interrupted",
    "overview",
    "ping",
    "recent_logs",
    "scaling_counts_before",
    "scaling_event_rows",
    "scaling_events",
    "scaling_steps",
    "service_briefs",
    "service_id_named",
    "simulations",
]


@dataclass(frozen=True)
class Overview:
    """systemOverview: counts from health checks, traffic figures from the last window of metrics."""

    active_services: int
    total_services: int
    requests_per_min: float
    avg_response_time_ms: float | None
    error_rate: float | None
    system_status: SystemStatus
    cpu_percent: float | None
    memory_mb: float | None


def ping(session: Session) -> None:
    """A round trip to the database; raises when it does not answer."""
    session.execute(text("SELECT 1"))


def list_services(session: Session) -> list[Service]:
    """Every service with its instances, by id."""
    return list(session.scalars(select(Service).order_by(Service.id)).all())


class ServiceBrief(NamedTuple):
    """A service's name, status and whether it is managed, without its instances."""

    name: str
    status: str
    managed: bool


def service_briefs(session: Session) -> list[ServiceBrief]:
    """Every service's name, status and managed flag, by id (one column query, no instances: a picker's choices)."""
    rows = session.execute(select(Service.name, Service.status, Service.managed).order_by(Service.id))
    return [ServiceBrief(name, status, bool(managed)) for name, status, managed in rows]


def get_service(session: Session, service_id: int) -> Service | None:
    """One service with its instances."""
    return session.get(Service, service_id)


def service_id_named(session: Session, name: str) -> int | None:
    """The id of the service called `name`, None when there is none."""
    return session.scalar(select(Service.id).where(Service.name == name))


def delete_service(session: Session, service_id: int) -> None:
    """Delete a service and (by cascade) its instances; nothing when it is gone already."""
    session.execute(delete(Service).where(Service.id == service_id))


def list_users(session: Session) -> list[User]:
    """Every user, by id."""
    return list(session.scalars(select(User).order_by(User.id)))


def admin_count(session: Session) -> int:
    """How many users hold the admin role."""
    return session.scalar(select(func.count()).select_from(User).where(User.role == "admin")) or 0


def overview(session: Session, now: datetime, window_s: float = 60.0) -> Overview:
    """KPIs of the registered services over the last window: requests/min, weighted latency, error rate %, latest
    CPU/memory."""
    statuses = [s for (s,) in session.execute(select(Service.status)).all()]
    since = now - timedelta(seconds=window_s)
    # per service, so each lookup is a short range of the (service_name, timestamp) primary key: a scan by time
    # alone reads every block range a time index has not summarised yet (today's partition, until a vacuum)
    own_window = (MetricRow.service_name == Service.name) & (MetricRow.timestamp > since)
    traffic = select(
        func.sum(MetricRow.request_count).label("requests"),
        func.sum(MetricRow.error_count).label("errors"),
        func.sum(MetricRow.latency_avg_ms * MetricRow.request_count).label("weighted"),
    ).where(own_window).lateral()
    latest = (select(MetricRow.cpu_percent, MetricRow.memory_mb).where(own_window)
              .order_by(MetricRow.timestamp.desc()).limit(1).lateral())
    requests, errors, weighted, cpu, mem = session.execute(
        select(
            func.coalesce(func.sum(traffic.c.requests), 0),
            func.coalesce(func.sum(traffic.c.errors), 0),
            func.sum(traffic.c.weighted),
            func.avg(latest.c.cpu_percent),
            func.sum(latest.c.memory_mb),
        ).select_from(Service).join(traffic, true()).outerjoin(latest, true())
    ).one()
    requests, errors = int(requests), int(errors)  # a sum of sums is numeric
    known = [s for s in statuses if s != "unknown"]
    if not known:
        status = SystemStatus.UNKNOWN
    elif all(s == "healthy" for s in known):
        status = SystemStatus.HEALTHY
    else:
        status = SystemStatus.DEGRADED
    return Overview(
        active_services=sum(s in {"healthy", "degraded"} for s in statuses),
        total_services=len(statuses),
        requests_per_min=float(requests) * 60.0 / window_s,
        avg_response_time_ms=float(weighted) / requests if requests and weighted is not None else None,
        error_rate=100.0 * errors / requests if requests else None,
        system_status=status,
        cpu_percent=float(cpu) if cpu is not None else None,
        memory_mb=float(mem) if mem is not None else None,
    )


@dataclass(frozen=True)
class LogFilter:
    """Filters of GET /api/logs and the Logs page; None means no filter."""

    limit: int = 100
    level: str | None = None
    source: str | None = None
    q: str | None = None
    since: datetime | None = None


def _log_query(f: LogFilter) -> Select[LogEntry]:
    query = select(LogEntry)
    if f.level:
        query = query.where(LogEntry.level == f.level)
    if f.source:
        query = query.where(LogEntry.source == f.source)
    if f.q:
        pattern = "%" + f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(LogEntry.message.ilike(pattern), LogEntry.source.ilike(pattern)))
    if f.since:
        query = query.where(LogEntry.timestamp >= f.since)
    return query.order_by(LogEntry.timestamp.desc(), LogEntry.id.desc()).limit(f.limit)


def recent_logs(session: Session, f: LogFilter) -> list[LogEntry]:
    """Newest first."""
    return list(session.scalars(_log_query(f)).all())


def logs_frame(session: Session, f: LogFilter) -> pd.DataFrame:
    """The same rows as recent_logs, as a DataFrame for tables and CSV."""
    columns = ["id", "timestamp", "level", "source", "message", "metadata"]
    return pd.DataFrame(
        [[r.id, r.timestamp, r.level, r.source, r.message, r.metadata_] for r in recent_logs(session, f)],
        columns=columns,
    )


def logs_csv(frame: pd.DataFrame) -> str:
    """A logs_frame as CSV: ISO timestamps, metadata as JSON text (empty when none)."""
    out = frame.copy()
    out["timestamp"] = [t.isoformat() if isinstance(t, datetime) else "" for t in out["timestamp"]]
    out["metadata"] = [
        "" if m is None else json.dumps(m, sort_keys=True, separators=(", ", ": "), default=str)
        for m in out["metadata"]
    ]
    return out.to_csv(index=False)


def log_sources(session: Session) -> list[str]:
    """Every source that has written a log row."""
    return list(session.scalars(select(LogEntry.source).distinct().order_by(LogEntry.source)).all())


def clear_logs(session: Session) -> int:
    """Delete every log row; return how many (the caller commits)."""
    result: CursorResult[Any] = session.execute(delete(LogEntry))  # type: ignore[assignment]
    return result.rowcount


def load_tests(session: Session, limit: int = 50) -> list[LoadTest]:
    """Load tests, newest first."""
    return list(session.scalars(select(LoadTest).order_by(LoadTest.id.desc()).limit(limit)))


def load_test(session: Session, test_id: int) -> LoadTest | None:
    """One load test by id."""
    return session.get(LoadTest, test_id)


def load_test_samples(session: Session, test_id: int) -> list[LoadTestSample]:
    """A run's per-second samples, in order."""
    return list(session.scalars(
        select(LoadTestSample).where(LoadTestSample.load_test_id == test_id).order_by(LoadTestSample.second)
    ))


def load_test_samples_frame(session: Session, test_id: int) -> pd.DataFrame:
    """Per-second samples flat: counts, error kinds as JSON, latency columns like corrected_p99_ms."""
    rows = []
    for r in load_test_samples(session, test_id):
        row: dict[str, Any] = {"second": r.second, "at": r.at.isoformat(), "sent": r.sent, "ok": r.ok,
                               "failed": r.failed, "dropped": r.dropped,
                               "errors": json.dumps(r.errors, sort_keys=True) if r.errors else ""}
        for kind in ("corrected", "uncorrected"):
            figures = r.latency.get(kind) or {}
            for name in ("p50", "p90", "p95", "p99", "p999", "max", "mean"):  # JSONB does not keep key order
                row[f"{kind}_{name}_ms"] = figures.get(name)
        rows.append(row)
    return pd.DataFrame(rows)


def breaker_transitions(session: Session, since: datetime, service: str | None = None) -> pd.DataFrame:
    """Circuit breaker transitions at or after `since` (of one service, if given), oldest first."""
    query = select(
        BreakerTransitionRow.at, BreakerTransitionRow.service_name, BreakerTransitionRow.from_state,
        BreakerTransitionRow.to_state, BreakerTransitionRow.reason,
    ).where(BreakerTransitionRow.at >= since).order_by(BreakerTransitionRow.at, BreakerTransitionRow.id)
    if service:
        query = query.where(BreakerTransitionRow.service_name == service)
    columns = ["at", "service_name", "from_state", "to_state", "reason"]
    return pd.DataFrame(session.execute(query).all(), columns=columns)



def simulations(session: Session, since: datetime | None = None, limit: int = 100) -> list[Simulation]:
    """Failure simulations, newest first; with `since`, only those in effect at or after it (still active, or
    ended since), e.g. the ones overlapping a chart's time range."""
    query = select(Simulation).order_by(Simulation.id.desc()).limit(limit)
    if since is not None:
        query = query.where(or_(Simulation.ended_at.is_(None), Simulation.ended_at >= since))
    return list(session.scalars(query))


def active_simulations(session: Session) -> list[Simulation]:
    """The simulations the engine holds active, oldest first."""
    return list(session.scalars(select(Simulation).where(Simulation.status == "active").order_by(Simulation.id)))


# -- scaling decisions (scaling_events: one row per manual action and per autoscaler period) -------------------

SCALING_COLUMNS = ["id", "timestamp", "service_name", "source", "direction", "from_count", "to_count", "metric",
                   "metric_value", "target", "reason"]


def _scaling_columns() -> list[Any]:
    return [getattr(ScalingEvent, c) for c in SCALING_COLUMNS]


def scaling_event_rows(session: Session, service: str | None, limit: int) -> list[ScalingEvent]:
    """The newest scaling decisions (of one service, if given), newest first by id."""
    query = select(ScalingEvent).order_by(ScalingEvent.id.desc()).limit(limit)
    if service:
        query = query.where(ScalingEvent.service_name == service)
    return list(session.scalars(query))


def scaling_events(session: Session, service: str | None = None, limit: int = 200,
                   changes_only: bool = False) -> pd.DataFrame:
    """Scaling decisions newest first (of one service, if given), "no change" periods too unless `changes_only`."""
    query = select(*_scaling_columns()).order_by(ScalingEvent.timestamp.desc(), ScalingEvent.id.desc()).limit(limit)
    if service:
        query = query.where(ScalingEvent.service_name == service)
    if changes_only:
        query = query.where(ScalingEvent.direction != "none")
    return pd.DataFrame(session.execute(query).all(), columns=SCALING_COLUMNS)


def scaling_steps(session: Session, since: datetime) -> pd.DataFrame:
    """The decisions at or after `since` that say something about a service's instance count, oldest first.

    Those are: each service's first one in the window (its count then), every change (to_count != from_count), and
    any whose from_count differs from the to_count before it (the count changed outside scaling, e.g. an engine
    restart starting the demo fleet afresh). Every autoscaler period writes a row; the other "no change" rows are
    left out, so a day of them is not read every refresh.
    """
    columns = _scaling_columns()
    previous = func.lag(ScalingEvent.to_count).over(
        partition_by=ScalingEvent.service_name, order_by=(ScalingEvent.timestamp, ScalingEvent.id))
    window = select(*columns, previous.label("previous")).where(ScalingEvent.timestamp >= since).subquery()
    query = select(*(window.c[c] for c in SCALING_COLUMNS)).where(or_(
        window.c.previous.is_(None),
        window.c.to_count != window.c.from_count,
        window.c.previous != window.c.from_count,
    )).order_by(window.c.timestamp, window.c.id)
    return pd.DataFrame(session.execute(query).all(), columns=SCALING_COLUMNS)


def scaling_counts_before(session: Session, since: datetime) -> dict[str, int]:
    """Each service's instance count at `since`, as its last decision before then left it (services with none
    before `since` are absent: their count then is not known)."""
    query = (select(ScalingEvent.service_name, ScalingEvent.to_count).where(ScalingEvent.timestamp < since)
             .ext(distinct_on(ScalingEvent.service_name))
             .order_by(ScalingEvent.service_name, ScalingEvent.timestamp.desc(), ScalingEvent.id.desc()))
    return {name: count for name, count in session.execute(query).all()}


def mark_interrupted(session: Session, now: datetime, lease_s: float, *, unowned: bool = True) -> tuple[int, int]:
    """Running load tests and active simulations of engines that are not live become interrupted, ended now:
    (load tests, simulations). `unowned`: rows no engine claims (engine_id null) too."""
    gone = cluster.live_engine_ids(lease_s)
    tests: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(LoadTest).where(LoadTest.status == "running", _not_live(LoadTest.engine_id, gone, unowned))
        .values(status="interrupted", ended_at=now))
    sims: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Simulation).where(Simulation.status == "active", _not_live(Simulation.engine_id, gone, unowned))
        .values(status="interrupted", ended_at=now))
    return tests.rowcount, sims.rowcount


def _not_live(engine_id: Any, live: Select[Any], unowned: bool) -> Any:
    owned = engine_id.not_in(live)
    return or_(engine_id.is_(None), owned) if unowned else owned
