"""Daily partitions of metrics: the migration from the plain table, strays in DEFAULT, upkeep and retention."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, func, make_url, select, text

from db import partitions
from db.models import LogEntry, MetricMinute, MetricRow
from db.partitions import shard_status
from db.session import MIGRATIONS, make_engine, make_session_factory, migrate
from engine.clock import FakeClock
from engine.store.maintenance import StorageMaintenance


def metric(service: str, at: datetime, requests: int = 10, p95: float | None = 30.0) -> MetricRow:
    return MetricRow(service_name=service, timestamp=at, bucket_seconds=5, request_count=requests, error_count=1,
                     latency_avg_ms=10.0, latency_p50_ms=8.0, latency_p95_ms=p95, latency_p99_ms=None,
                     cpu_percent=None, memory_mb=64.0, instances_scraped=1)


@pytest.fixture
def fresh_engine(db_engine: Engine) -> Iterator[Engine]:
    """An empty database of its own on the test server (migrations are tested from scratch)."""
    name = f"mm_mig_{uuid.uuid4().hex[:8]}"
    admin = make_engine(db_engine.url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(db_engine.url).set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def upgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_migration_moves_existing_rows_into_daily_partitions_and_builds_the_rollup(fresh_engine):
    upgrade(fresh_engine, "0005")
    day = datetime(2026, 3, 10, 23, 59, 30, tzinfo=UTC)
    with fresh_engine.begin() as c:
        for i, at in enumerate([day, day + timedelta(seconds=5), day + timedelta(seconds=40), day + timedelta(days=2)]):
            c.execute(text("""INSERT INTO metrics (service_name, "timestamp", bucket_seconds, request_count,
                              error_count, latency_avg_ms, latency_p50_ms, latency_p95_ms, instances_scraped)
                              VALUES ('orders', :at, 5, :n, 0, 10, 8, :p95, 1)"""),
                      {"at": at, "n": 10 * (i + 1), "p95": 20.0 + i})
    migrate(fresh_engine)
    with make_session_factory(fresh_engine)() as s:
        names = [p.name for p in partitions.list_partitions(s)]
        assert {"metrics_p20260310", "metrics_p20260311", "metrics_p20260312", "metrics_default"} <= set(names)
        assert s.scalar(select(func.count()).select_from(MetricRow)) == 4
        assert s.scalar(text("SELECT count(*) FROM metrics_default")) == 0
        assert s.scalar(text("SELECT count(*) FROM metrics_p20260310")) == 2  # 23:59:30 and :35
        minutes = {(m.minute, m.request_count, m.buckets, m.p95_max_ms) for m in s.scalars(select(MetricMinute))}
        assert minutes == {
            (datetime(2026, 3, 10, 23, 59, tzinfo=UTC), 30, 2, 21.0),
            (datetime(2026, 3, 11, 0, 0, tzinfo=UTC), 30, 1, 22.0),
            (datetime(2026, 3, 12, 23, 59, tzinfo=UTC), 40, 1, 23.0),
        }


def test_a_day_without_a_partition_lands_in_default_and_moves_out_when_its_day_is_created(sessions):
    stray = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)
    with sessions.begin() as s:
        s.add(metric("orders", stray))
    with sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM metrics_default")) == 1
    try:
        with sessions.begin() as s:
            assert partitions.create_day(s, date(2031, 5, 4)) is True
            assert partitions.create_day(s, date(2031, 5, 4)) is False
        with sessions() as s:
            assert s.scalar(text("SELECT count(*) FROM metrics_default")) == 0
            assert s.scalar(text("SELECT count(*) FROM metrics_p20310504")) == 1
            # moved, not added: the rollup still counts the row once
            assert s.scalar(select(MetricMinute.request_count).where(MetricMinute.minute == stray)) == 10
            part = next(p for p in partitions.list_partitions(s) if p.name == "metrics_p20310504")
            assert (part.start, part.end) == (stray.replace(hour=0), stray.replace(hour=0) + timedelta(days=1))
    finally:
        with sessions.begin() as s:
            s.execute(text("DROP TABLE IF EXISTS metrics_p20310504"))


def test_upkeep_creates_days_ahead_and_drops_whole_days_past_the_retention(sessions):
    clock = FakeClock(datetime(2020, 1, 10, 6, 0, tzinfo=UTC))
    upkeep = StorageMaintenance(sessions, clock, retention_days=3, ahead_days=2)
    created = set()
    try:
        report = upkeep.run_once()
        created |= set(report.created)
        assert set(report.created) == {"metrics_p20200110", "metrics_p20200111", "metrics_p20200112"}
        with sessions.begin() as s:
            for day in (10, 11, 12):
                s.add(metric("orders", datetime(2020, 1, day, 12, 0, tzinfo=UTC)))
                s.add(LogEntry(timestamp=datetime(2020, 1, day, 12, 0, tzinfo=UTC), level="INFO", source="t",
                               message=f"day {day}"))
        assert upkeep.run_once().created == ()  # idempotent

        clock.advance(4 * 86400)  # 2020-01-14 06:00: the 10th ended more than 3 days ago, the 11th did not
        report = upkeep.run_once()
        created |= set(report.created)
        assert report.dropped == ("metrics_p20200110",)
        assert set(report.created) == {"metrics_p20200114", "metrics_p20200115", "metrics_p20200116"}
        with sessions() as s:
            left = sorted(t.day for t in s.scalars(select(MetricRow.timestamp)))
            assert left == [11, 12]
            assert sorted(m.minute.day for m in s.scalars(select(MetricMinute))) == [11, 12]
            assert sorted(s.scalars(select(LogEntry.message))) == ["day 11", "day 12"]
            names = {p.name for p in partitions.list_partitions(s)}
            assert "metrics_p20200110" not in names and "metrics_p20200111" in names
    finally:
        with sessions.begin() as s:
            for name in created:
                s.execute(text(f"DROP TABLE IF EXISTS {name}"))


def test_shard_status_follows_the_clock_and_the_retention():
    day = partitions.Partition("metrics_p20200110", datetime(2020, 1, 10, tzinfo=UTC),
                               datetime(2020, 1, 11, tzinfo=UTC), 5, 8192)
    keep = timedelta(days=3)
    assert shard_status(day, datetime(2020, 1, 9, tzinfo=UTC), keep) == "future"
    assert shard_status(day, datetime(2020, 1, 10, 12, tzinfo=UTC), keep) == "active"
    assert shard_status(day, datetime(2020, 1, 13, tzinfo=UTC), keep) == "sealed"
    assert shard_status(day, datetime(2020, 1, 14, tzinfo=UTC), keep) == "expired"
    default = partitions.Partition("metrics_default", None, None, 0, 0)
    assert shard_status(default, datetime(2020, 1, 14, tzinfo=UTC), keep) == "default"


def test_drop_refuses_anything_but_a_daily_partition(sessions):
    with sessions.begin() as s, pytest.raises(ValueError, match="not a daily partition"):
        partitions.drop(s, partitions.Partition("metrics_default", None, None, 0, 0))


def test_api_lists_the_shards_with_sizes_and_estimates(client, runtime):
    now = runtime.clock.now()
    with runtime.sessions.begin() as s:
        for i in range(50):
            s.add(metric("orders", now - timedelta(seconds=5 * i)))
    runtime.storage.run_once()  # analyses partitions that never were
    body = client.get("/api/shards").json
    assert body["retentionDays"] == runtime.settings.retention_days and body["table"] == "metrics"
    today = next(s for s in body["shards"] if s["name"] == f"metrics_p{now:%Y%m%d}")
    assert today["status"] == "active" and today["sizeBytes"] > 0
    assert today["from"] == now.replace(hour=0, minute=0, second=0, microsecond=0).isoformat()
    in_today = sum(1 for i in range(50) if (now - timedelta(seconds=5 * i)).date() == now.date())
    assert today["rowEstimate"] == in_today
    assert body["shards"][-1]["status"] == "default"
    assert body["totalSizeBytes"] == sum(s["sizeBytes"] for s in body["shards"])
    assert body["rollup"]["table"] == "metrics_1m" and body["rollup"]["sizeBytes"] > 0
