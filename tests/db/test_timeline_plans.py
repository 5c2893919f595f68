"""The timeline of a 30-day-old incident reads each source through an index: every statement timeline() runs is
EXPLAINed over two months of rows in every source table."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from db.timeline import MARGIN, Span, timeline

NOW = datetime(2026, 6, 30, tzinfo=UTC)
START = NOW - timedelta(days=60)
SMALL = {"services", "instances"}  # a handful of rows: a sequential scan is the right plan there


@pytest.fixture
def two_months(sessions):
    """Rows every few minutes for 60 days in each source, 20 services; analysed."""
    with sessions.begin() as s:
        s.execute(text("INSERT INTO services (name) SELECT 'svc-' || lpad(i::text, 2, '0') "
                       "FROM generate_series(1, 20) AS i"))
        s.execute(text("INSERT INTO instances (service_id, url) SELECT i, 'http://127.0.0.1:' || (9000 + i) "
                       "FROM generate_series(1, 20) AS i"))
        minutes = 60 * 24 * 60  # 86,400 rows a table
        params = {"start": START}
        s.execute(text(f"""
            INSERT INTO alert_events (fingerprint, rule_id, rule_name, service_name, state, silenced, at)
            SELECT CASE WHEN i % 7 = 0 THEN 'fp-monitor' ELSE 'fp-' || (i % 20) END, 1, 'r',
                   CASE WHEN i % 7 = 0 THEN NULL ELSE 'svc-' || lpad((1 + i % 20)::text, 2, '0') END, 'firing', false,
                   :start + make_interval(mins => i)
            FROM generate_series(0, {minutes} - 1) AS i"""), params)
        s.execute(text(f"""
            INSERT INTO instance_health_transitions (service_id, instance_id, from_state, to_state, at)
            SELECT 1 + i % 20, 1 + i % 20, 'healthy', 'unhealthy', :start + make_interval(mins => i)
            FROM generate_series(0, {minutes} - 1) AS i"""), params)
        s.execute(text(f"""
            INSERT INTO service_health_transitions (service_id, from_state, to_state, at)
            SELECT 1 + i % 20, 'healthy', 'unhealthy', :start + make_interval(mins => i)
            FROM generate_series(0, {minutes} - 1) AS i"""), params)
        s.execute(text(f"""
            INSERT INTO circuit_breaker_transitions (service_name, from_state, to_state, reason, at)
            SELECT 'svc-' || lpad((1 + i % 20)::text, 2, '0'), 'CLOSED', 'OPEN', 'x', :start + make_interval(mins => i)
            FROM generate_series(0, {minutes} - 1) AS i"""), params)
        s.execute(text(f"""
            INSERT INTO scaling_events (service_name, direction, from_count, to_count, reason, "timestamp")
            SELECT 'svc-' || lpad((1 + i % 20)::text, 2, '0'), CASE WHEN (i / 20) % 10 = 0 THEN 'up' ELSE 'none' END,
                   1, 1, 'x', :start + make_interval(mins => i)
            FROM generate_series(0, {minutes} - 1) AS i"""), params)
        s.execute(text(f"""
            INSERT INTO simulations (kind, target, params, status, started_at, ends_at, ended_at)
            SELECT 'service-failure', 'svc-' || lpad((1 + i % 20)::text, 2, '0'), '{{}}', 'completed',
                   :start + make_interval(mins => 10 * i), :start + make_interval(mins => 10 * i + 5),
                   :start + make_interval(mins => 10 * i + 5)
            FROM generate_series(0, {minutes // 10} - 1) AS i"""), params)
        s.execute(text(f"""
            INSERT INTO load_tests (status, concurrent_users, requests_per_second, duration_s, target_service,
                                    total_requests, successful_requests, failed_requests, dropped_requests,
                                    started_at, ended_at)
            SELECT 'completed', 1, 10, 60, 'svc-' || lpad((1 + i % 20)::text, 2, '0'), 600, 600, 0, 0,
                   :start + make_interval(mins => 10 * i), :start + make_interval(mins => 10 * i + 1)
            FROM generate_series(0, {minutes // 10} - 1) AS i"""), params)
        s.execute(text(f"""
            INSERT INTO deliveries (id, channel_name, fingerprint, event, status, attempts, payload, created_at)
            SELECT gen_random_uuid(), 'ops', CASE WHEN i % 7 = 0 THEN 'fp-monitor' ELSE 'fp-' || (i % 20) END,
                   'firing', 'delivered', 1, '{{}}',
                   :start + make_interval(mins => i)
            FROM generate_series(0, {minutes} - 1) AS i"""), params)
        s.execute(text(f"""
            INSERT INTO incidents (id, service_name, status, title, severity, started_at)
            SELECT ('00000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, 'svc-01', 'resolved', 't',
                   'critical', :start + make_interval(mins => i)
            FROM generate_series(1, {minutes // 10}) AS i"""), params)
        s.execute(text("""
            INSERT INTO incident_notes (incident_id, at, author, note)
            SELECT id, started_at, 'ops', 'looked' FROM incidents, generate_series(1, 3)"""))
        s.execute(text("ANALYZE"))
    return NOW


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node] + [n for child in node.get("Plans", []) for n in _plan_nodes(child)]


def test_every_source_of_an_old_incident_is_read_by_an_index(sessions, two_months):
    for service in ("svc-07", None):  # a service's incident, the monitor's
        _check(sessions, two_months, service)


def _check(sessions, now: datetime, service: str | None) -> None:
    started = now - timedelta(days=30)
    fingerprint = "fp-6" if service else "fp-monitor"
    span = Span(uuid.uuid4(), service, (fingerprint,), started - MARGIN, started + timedelta(hours=6),
                timedelta(hours=2))
    statements: list[tuple[str, Any]] = []
    with sessions() as s:
        connection = s.connection()
        listener = lambda conn, cursor, statement, parameters, context, many: statements.append(  # noqa: E731
            (statement, parameters))
        event.listen(connection, "before_cursor_execute", listener)
        try:
            events = timeline(s, span)
        finally:
            event.remove(connection, "before_cursor_execute", listener)
        assert events.events, "the span has events in every source"
        raw = connection.connection.driver_connection
        scans: list[tuple[str, str]] = []
        used: set[str] = set()
        for statement, parameters in statements:
            with raw.cursor() as cursor:
                cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
                document = cursor.fetchone()[0]
            top = (document if isinstance(document, list) else json.loads(document))[0]["Plan"]
            scans += [(n["Relation Name"], n["Node Type"]) for n in _plan_nodes(top) if "Relation Name" in n]
            used |= {str(n["Index Name"]) for n in _plan_nodes(top) if "Index Name" in n}
    kinds = {e.kind.value for e in events.events}
    expected = {"alert", "notification", "simulation", "load-test"} | (
        {"breaker", "scaling", "health"} if service else set())
    assert kinds == expected
    sequential = [(table, kind) for table, kind in scans if kind == "Seq Scan" and table not in SMALL]
    assert sequential == [], scans
    # the spans' own indexes (migration 0010), each range bounded by the longest a span may run
    assert {"ix_simulations_started", "ix_load_tests_started", "ix_incident_notes_incident"} <= used
    if service:
        assert {"ix_alert_events_service_at", "ix_scaling_events_service_timestamp",
                "ix_breaker_transitions_service_at", "ix_service_health_transitions_service_at",
                "ix_instance_health_transitions_service_at"} <= used
