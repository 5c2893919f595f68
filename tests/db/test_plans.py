"""Query plans of the dashboard's access paths, read with EXPLAIN: pruning, indexes, estimates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from db import series
from db.partitions import create_day, partition_name

DAY = datetime(2026, 6, 15, tzinfo=UTC)


def plan(session, sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The top plan node of EXPLAIN (FORMAT JSON) of one of db.series' queries (driver-style parameters)."""
    document = series.fetch(session, f"EXPLAIN (FORMAT JSON) {sql}", params)[0][0]
    top: dict[str, Any] = (document if isinstance(document, list) else json.loads(document))[0]["Plan"]
    return top


def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a plan tree."""
    return [node] + [n for child in node.get("Plans", []) for n in nodes(child)]


@pytest.fixture
def three_days(sessions):
    """Three daily partitions, 20 services, a row every 30 s each (about 170k rows), analysed."""
    days = [DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)]
    with sessions.begin() as s:
        for d in days:
            create_day(s, d.date())
        s.execute(text("""
            INSERT INTO metrics (service_name, "timestamp", bucket_seconds, request_count, error_count,
                                 latency_avg_ms, latency_p50_ms, latency_p95_ms, latency_p99_ms, instances_scraped)
            SELECT 'svc-' || lpad(s::text, 2, '0'), :start + make_interval(secs => 30 * i), 30, 100, i % 3,
                   20, 15, 40, 80, 1
            FROM generate_series(0, 3 * 2880 - 1) AS i, generate_series(1, 20) AS s
        """), {"start": days[0]})
        for d in days:
            s.execute(text(f"ANALYZE {partition_name(d.date())}"))
        s.execute(text("ANALYZE metrics_1m"))
    yield days
    with sessions.begin() as s:
        for d in days:
            s.execute(text(f"DROP TABLE IF EXISTS {partition_name(d.date())}"))


def test_a_chart_range_reads_only_its_days_partitions(sessions, three_days):
    start, end = DAY + timedelta(hours=6), DAY + timedelta(hours=6, minutes=30)
    with sessions() as s:
        top = plan(s, series._RAW, {"step": 5, "services": ["svc-01", "svc-02"], "start": start, "end": end})
    scanned = {n["Relation Name"] for n in nodes(top) if "Relation Name" in n}
    assert scanned == {partition_name(DAY.date())}


def test_one_service_over_an_hour_uses_the_service_time_index(sessions, three_days):
    start = DAY + timedelta(hours=12)
    with sessions() as s:
        top = plan(s, series._RAW, {"step": 10, "services": ["svc-07"], "start": start,
                                    "end": start + timedelta(hours=1)})
    scans = [n for n in nodes(top) if "Relation Name" in n]
    assert scans and all(n["Node Type"] in {"Index Scan", "Bitmap Heap Scan", "Index Only Scan"} for n in scans)
    used = {str(n["Index Name"]) for n in nodes(top) if "Index Name" in n}
    assert any(name.endswith("pkey") for name in used), used


def test_a_day_of_minute_buckets_reads_the_rollup_by_its_key(sessions, three_days):
    with sessions() as s:
        top = plan(s, series._MINUTES, { "services": [f"svc-{i:02d}" for i in range(1, 21)],
                                       "start": DAY, "end": DAY + timedelta(days=1)})
        rows = s.execute(text("SELECT count(*) FROM metrics_1m WHERE minute >= :a AND minute < :b"),
                         {"a": DAY, "b": DAY + timedelta(days=1)}).scalar_one()
    assert rows == 20 * 1440
    relations = {n["Relation Name"] for n in nodes(top) if "Relation Name" in n}
    assert relations == {"metrics_1m"}
    scans = [n for n in nodes(top) if n.get("Relation Name") == "metrics_1m"]
    # a day of 20 services is read through an index of the rollup as it is: no sort, no aggregation, no raw rows
    kinds = {n["Node Type"] for n in nodes(top)}
    assert kinds <= {"Index Scan", "Bitmap Heap Scan", "Bitmap Index Scan", "BitmapOr"}, kinds
    assert 0.5 * rows <= scans[0]["Plan Rows"] <= 2 * rows


def test_extended_statistics_fix_the_estimate_of_correlated_log_filters(sessions):
    # errors come from one source only: source and level are far from independent
    with sessions.begin() as s:
        s.execute(text("""
            INSERT INTO logs ("timestamp", level, source, message)
            SELECT now(), CASE WHEN i % 10 = 0 THEN 'ERROR' ELSE 'INFO' END,
                   CASE WHEN i % 10 = 0 THEN 'health' ELSE 'src-' || (i % 9) END, 'x'
            FROM generate_series(1, 50000) AS i
        """))
        s.execute(text("ANALYZE logs"))
    query = "SELECT * FROM logs WHERE source = 'health' AND level = 'ERROR'"
    with sessions() as s:
        actual = s.execute(text(f"SELECT count(*) FROM ({query}) q")).scalar_one()
        with_stats = plan(s, query, {})["Plan Rows"]
    assert actual == 5000
    assert 0.5 * actual <= with_stats <= 2 * actual
    with sessions() as s:  # the same without the statistics object (rolled back): selectivities multiply
        s.execute(text("DROP STATISTICS logs_source_level"))
        s.execute(text("ANALYZE logs"))
        without = plan(s, query, {})["Plan Rows"]
        s.rollback()
    assert without < actual / 5
    with sessions.begin() as s:
        s.execute(text("ANALYZE logs"))
