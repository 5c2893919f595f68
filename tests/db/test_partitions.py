"""Daily partitions of metrics: the migration from the plain table, strays in DEFAULT, upkeep and retention."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, func, make_url, select, text
from sqlalchemy.orm import Session, sessionmaker

from contract.roles import Role
from db import partitions
from db.models import LogEntry, MetricMinute, MetricRow
from db.partitions import shard_status
from db.session import MIGRATIONS, make_engine, make_session_factory, migrate
from engine.api import create_app
from engine.clock import FakeClock
from engine.runtime import Runtime
from engine.store.maintenance import StorageMaintenance
from tests.conftest import drop_database, token_for


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
    drop_database(admin, name)
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
        assert set(report.created) == {f"{t}_p202001{d}" for t in ("metrics", "instance_checks_1m")
                                       for d in (10, 11, 12)}
        with sessions.begin() as s:
            for day in (10, 11, 12):
                s.add(metric("orders", datetime(2020, 1, day, 12, 0, tzinfo=UTC)))
                s.add(LogEntry(timestamp=datetime(2020, 1, day, 12, 0, tzinfo=UTC), level="INFO", source="t",
                               message=f"day {day}"))
        assert upkeep.run_once().created == ()  # idempotent

        clock.advance(4 * 86400)  # 2020-01-14 06:00: the 10th ended more than 3 days ago, the 11th did not
        report = upkeep.run_once()
        created |= set(report.created)
        assert report.dropped == ("metrics_p20200110", "instance_checks_1m_p20200110")
        assert set(report.created) == {f"{t}_p202001{d}" for t in ("metrics", "instance_checks_1m")
                                       for d in (14, 15, 16)}
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


def flush_stats(session: Session) -> None:
    """This backend's pending statistics are written when its transaction ends, not up to 10 s later: row
    estimates read afterwards are settled."""
    session.execute(text("SELECT pg_stat_force_next_flush()"))


def day_names(sessions: sessionmaker[Session], year: int) -> set[str]:
    with sessions() as s:
        return {p.name for table in partitions.DAILY_TABLES for p in partitions.list_partitions(s, table)
                if p.start is not None and p.start.year == year}


def test_api_lists_the_shards_with_sizes_and_estimates(clean_db, sessions, settings):
    clock = FakeClock(datetime(2020, 6, 15, 0, 2, tzinfo=UTC))  # two minutes into a UTC day
    before = day_names(sessions, 2020)
    rt = Runtime.open(settings, clock)  # its upkeep makes 2020-06-15 and the days ahead; 06-14 has none
    try:
        now = clock.now()
        with rt.sessions.begin() as s:
            for i in range(50):  # every 5 s back from 00:02:00: 25 rows on the 15th, 25 on the 14th (in DEFAULT)
                s.add(metric("orders", now - timedelta(seconds=5 * i)))
            flush_stats(s)
        rt.storage.run_once()  # analyses today's partition
        with rt.sessions.begin() as s:
            s.execute(text("ANALYZE metrics_default"))  # analysed only when its estimate is unknown
        client = create_app(rt).test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.OPERATOR)
        body: Any = client.get("/api/shards").json
        assert body["retentionDays"] == settings.retention_days and body["table"] == "metrics"
        shards = {s["name"]: s for s in body["shards"]}
        today = shards["metrics_p20200615"]
        assert today["status"] == "active" and today["sizeBytes"] > 0
        assert (today["from"], today["to"]) == ("2020-06-15T00:00:00+00:00", "2020-06-16T00:00:00+00:00")
        assert today["rowEstimate"] == 25
        assert "metrics_p20200614" not in shards
        assert shards["metrics_p20200616"]["status"] == "future"
        assert body["shards"][-1]["name"] == "metrics_default"
        assert (body["shards"][-1]["status"], body["shards"][-1]["rowEstimate"]) == ("default", 25)
        assert body["totalSizeBytes"] == sum(s["sizeBytes"] for s in body["shards"])
        assert body["rollup"]["table"] == "metrics_1m" and body["rollup"]["sizeBytes"] > 0
    finally:
        rt.stop()
        with sessions.begin() as s:
            for name in day_names(sessions, 2020) - before:
                s.execute(text(f"DROP TABLE IF EXISTS {name}"))


def test_upkeep_makes_the_utc_day_whatever_the_local_zone(sessions, monkeypatch):
    monkeypatch.setenv("TZ", "UTC+12")  # POSIX: twelve hours west of UTC, where 00:30 UTC is the day before
    time.tzset()
    created: tuple[str, ...] = ()
    try:
        clock = FakeClock(datetime(2019, 8, 20, 0, 30, tzinfo=UTC))
        assert clock.now().astimezone().date() == date(2019, 8, 19)  # the zone is in effect
        created = StorageMaintenance(sessions, clock, retention_days=3, ahead_days=1).run_once().created
        assert created == ("metrics_p20190820", "metrics_p20190821",
                           "instance_checks_1m_p20190820", "instance_checks_1m_p20190821")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
        with sessions.begin() as s:
            for name in {*created, "metrics_p20190819", "instance_checks_1m_p20190819"}:
                s.execute(text(f"DROP TABLE IF EXISTS {name}"))


def test_upkeep_deletes_default_rows_past_the_retention_and_keeps_the_newer(sessions):
    """Rows with no partition of their day wait in DEFAULT; retention reaches them row by row."""
    clock = FakeClock(datetime(2019, 7, 20, 6, 0, tzinfo=UTC))  # retention 3 days: cutoff 2019-07-17 06:00
    cutoff = datetime(2019, 7, 17, 6, 0, tzinfo=UTC)
    strays = [datetime(2019, 7, 1, 12, 0, tzinfo=UTC), cutoff - timedelta(seconds=5), cutoff,
              cutoff + timedelta(minutes=1), datetime(2019, 7, 18, 23, 59, 55, tzinfo=UTC)]
    before = day_names(sessions, 2019)
    assert not {"metrics_p20190701", "metrics_p20190717", "metrics_p20190718"} & before
    with sessions.begin() as s:
        s.add_all(metric("orders", at) for at in strays)
    with sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM metrics_default")) == 5
    try:
        report = StorageMaintenance(sessions, clock, retention_days=3, ahead_days=0).run_once()
        assert report.created == ("metrics_p20190720", "instance_checks_1m_p20190720") and report.dropped == ()
        # two raw rows in DEFAULT and their two rollup minutes, each older than the cutoff
        assert report.deleted_rows == 4
        with sessions() as s:
            kept = sorted(s.scalars(text('SELECT "timestamp" FROM metrics_default')))
            minutes = sorted(s.scalars(select(MetricMinute.minute)))
        assert kept == strays[2:]  # the cutoff itself is kept: older than it is deleted
        assert minutes == [cutoff, cutoff + timedelta(minutes=1), datetime(2019, 7, 18, 23, 59, tzinfo=UTC)]
        assert StorageMaintenance(sessions, clock, retention_days=3, ahead_days=0).run_once().deleted_rows == 0
    finally:
        with sessions.begin() as s:
            for name in day_names(sessions, 2019) - before:
                s.execute(text(f"DROP TABLE IF EXISTS {name}"))
