"""Bucketed metric series for charts: date_bin in SQL, at most ~max_points buckets per service.

Steps under a minute read the raw (partitioned) table; a minute or more read the 1-minute rollup
that a trigger keeps (migration 0006), so a week of 20 services is ~200k rollup rows, not 10M raw.
Both paths combine buckets the same way: counts add up, the average latency is weighted by
requests, p50 is the request-weighted mean of the bucket medians, p95/p99 are the worst bucket's
(a percentile cannot be merged exactly from percentiles), CPU and memory are means.

Requests/s is a bucket's requests over the seconds its rows cover: a 5 s bucket of rows 1.2 s apart holds four or
five of them, and dividing by the step would draw that as a saw. The rollup keeps no covered time, so a bucket of
a minute or more divides by the step, which is exact when the collection interval divides a minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import pandas as pd
import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["COLUMNS", "STEPS", "fetch", "metric_series", "pick_step"]

# bucket widths a chart may use, seconds (Grafana-like: round numbers of the clock)
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)  # bins align to UTC minutes, hours and days
COLUMNS = ["service", "bucket", "step_s", "requests", "errors", "rps", "error_rate", "latency_avg_ms",
           "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "cpu_percent", "memory_mb"]

_RAW = """
SELECT service_name AS service,
       extract(epoch FROM date_bin(make_interval(secs => %(step)s), "timestamp", %(origin)s))::float8
           AS bucket,
       sum(request_count)::bigint AS requests, sum(error_count)::bigint AS errors,
       sum(latency_avg_ms * request_count) FILTER (WHERE latency_avg_ms IS NOT NULL) AS lat_sum,
       sum(latency_p50_ms * request_count) FILTER (WHERE latency_avg_ms IS NOT NULL) AS p50_sum,
       sum(request_count) FILTER (WHERE latency_avg_ms IS NOT NULL)::bigint AS lat_n,
       max(latency_p95_ms) AS p95, max(latency_p99_ms) AS p99, avg(cpu_percent) AS cpu, avg(memory_mb) AS mem,
       sum(bucket_seconds)::float8 AS covered
FROM metrics
WHERE service_name = ANY(%(services)s) AND "timestamp" >= %(start)s AND "timestamp" < %(end)s
GROUP BY 1, 2
"""

_ROLLUP = """
SELECT service_name AS service,
       extract(epoch FROM date_bin(make_interval(secs => %(step)s), minute, %(origin)s))::float8 AS bucket,
       sum(request_count)::bigint AS requests, sum(error_count)::bigint AS errors,
       sum(latency_sum_ms) AS lat_sum, sum(p50_sum_ms) AS p50_sum, sum(latency_requests)::bigint AS lat_n,
       max(p95_max_ms) AS p95, max(p99_max_ms) AS p99,
       sum(cpu_sum) / nullif(sum(cpu_n), 0) AS cpu, sum(memory_sum_mb) / nullif(sum(memory_n), 0) AS mem,
       NULL::float8 AS covered
FROM metrics_1m
WHERE service_name = ANY(%(services)s) AND minute >= %(start)s AND minute < %(end)s
GROUP BY 1, 2
"""

# the rollup's own grain: no grouping
_MINUTES = """
SELECT service_name AS service, extract(epoch FROM minute)::float8 AS bucket,
       request_count AS requests, error_count AS errors, latency_sum_ms AS lat_sum, p50_sum_ms AS p50_sum,
       latency_requests AS lat_n, p95_max_ms AS p95, p99_max_ms AS p99,
       cpu_sum / nullif(cpu_n, 0) AS cpu, memory_sum_mb / nullif(memory_n, 0) AS mem, NULL::float8 AS covered
FROM metrics_1m
WHERE service_name = ANY(%(services)s) AND minute >= %(start)s AND minute < %(end)s
"""


def fetch(session: Session, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run one of this module's queries (psycopg %(name)s style) on the driver's own cursor, in the session's
    transaction: plain tuples, no Row objects for tens of thousands of rows."""
    raw = cast("psycopg.Connection[Any]", session.connection().connection.driver_connection)
    with raw.cursor(binary=True) as cursor:  # numbers arrive as machine values, not text to parse
        cursor.execute(sql, {"origin": ORIGIN, **params})
        return cursor.fetchall()


def pick_step(start: datetime, end: datetime, max_points: int = 2000, min_step: float = 1.0) -> int:
    """The smallest step in STEPS, at least min_step (the collection bucket), giving at most max_points bins."""
    span = (end - start).total_seconds()
    for step in STEPS:
        if step >= min_step and span / step <= max_points:
            return step
    return STEPS[-1]


def metric_series(session: Session, services: Sequence[str], start: datetime, end: datetime, *,
                  max_points: int = 2000, min_step: float = 1.0) -> pd.DataFrame:
    """One row per service per bucket in [start, end), oldest first; COLUMNS; unknown values are NaN."""
    step = pick_step(start, end, max_points, min_step)
    if not services:
        return pd.DataFrame(columns=COLUMNS)
    if step >= 60:  # a minute rollup bin is wholly inside one bucket only when the range starts on a minute
        start = start.replace(second=0, microsecond=0)
    session.execute(text("SET LOCAL work_mem = '64MB'"))  # a week of groups aggregates in memory, not on disk
    sql = _MINUTES if step == 60 else _ROLLUP if step > 60 else _RAW
    rows = fetch(session, sql, {"step": step, "services": list(services), "start": start, "end": end})
    frame = pd.DataFrame.from_records(rows, columns=["service", "bucket", "requests", "errors", "lat_sum", "p50_sum",
                                                     "lat_n", "p95", "p99", "cpu", "mem", "covered"])
    lat_n = frame["lat_n"].astype("float64").where(frame["lat_n"] > 0)
    out = pd.DataFrame({
        "service": frame["service"],
        "bucket": pd.to_datetime(frame["bucket"], unit="s", utc=True),
        "step_s": step,
        "requests": frame["requests"].astype("int64"),
        "errors": frame["errors"].astype("int64"),
        "rps": frame["requests"].astype("float64") / frame["covered"].astype("float64").fillna(step),
        "error_rate": (100.0 * frame["errors"] / frame["requests"].where(frame["requests"] > 0)).astype("float64"),
        "latency_avg_ms": frame["lat_sum"].astype("float64") / lat_n,
        "latency_p50_ms": frame["p50_sum"].astype("float64") / lat_n,
        "latency_p95_ms": frame["p95"].astype("float64"),
        "latency_p99_ms": frame["p99"].astype("float64"),
        "cpu_percent": frame["cpu"].astype("float64"),
        "memory_mb": frame["mem"].astype("float64"),
    })
    # sorted here, not in SQL: PostgreSQL sorting the wide rows cost more than the scan itself
    return out[COLUMNS].sort_values(["service", "bucket"], ignore_index=True)
