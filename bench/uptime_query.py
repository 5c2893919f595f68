"""The 30-day uptime answer of one service of 20 instances: ours (daily rollup + day-partitioned minutes) vs
the same check counts read from every minute row, partitioned and in one plain table; plus the rollup's size.

One run fills 30 days of the per-minute check rollup for the measured service (20 instances, 864,000 rows) and
for `--noise` other services of 20 instances each, derives the daily rollup from it as the engine's upserts
would, and writes the service's state changes (a 60 s outage every 6 hours, each instance down 60 s once a
day). Then it times, as the median of 7 runs after a warm-up:
- the endpoint GET /api/services/<id>/uptime?window=30d through the Flask app (auth, queries, serialisation);
- the endpoint's database work alone (db.history: transitions, evidence, checks per instance);
- the check counts read from the minute rollup alone, on the partitioned table and on a plain copy with the same
  primary key (what the daily rollup saves).
Finally it measures one full day partition with pg_total_relation_size and extrapolates the rollup to 10,000
instances checked every 5 s for 30 days. Usage: python -m bench.uptime_query [--noise 9] [--days 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine, text

from bench.common import median_ms, scratch_database
from contract.roles import Role
from contract.settings import Settings
from db import history, partitions
from db.session import make_engine, make_session_factory
from engine.api import create_app
from engine.clock import SystemClock
from engine.runtime import Runtime
from engine.security.tokens import TokenIssuer

INSTANCES = 20
SID = 1
SECRET = "bench-secret-0123456789-abcdefghijklmnop"


def instance_id(service: int, k: int) -> int:
    """Instance k (1..20) of service `service`: the measured service's are 1..20."""
    return (service - 1) * INSTANCES + k


def seed(engine: Engine, services: int, start: datetime, end: datetime) -> int:
    """Services, instances, minute and daily rollups, transitions; returns the minute rows written."""
    with engine.begin() as c:
        c.execute(text("INSERT INTO services (id, name) VALUES (:id, 'measured')"), {"id": SID})
        c.execute(text("INSERT INTO instances (id, service_id, url) SELECT k, :sid, 'http://127.0.0.1:' || (9000 + k) "
                       "FROM generate_series(1, :n) k"), {"sid": SID, "n": INSTANCES})
    s = make_session_factory(engine)
    day = start.date()
    while datetime.combine(day, datetime.min.time(), tzinfo=UTC) < end:
        with s.begin() as session:
            partitions.create_day(session, day, partitions.CHECKS)
        day += timedelta(days=1)
    rows = 0
    at = start
    while at < end:  # a day per transaction
        upto = min(at + timedelta(days=1), end)
        with engine.begin() as c:
            # instance k of every service is down (12 refused checks) in minute k of each hour: deterministic
            rows += c.execute(text("""
                INSERT INTO instance_checks_1m (service_id, minute, instance_id, checks, up, degraded, down,
                                                latency_n, latency_sum_ms, latency_max_ms)
                SELECT s, m, (s - 1) * :n + k, 12, 12 - d, 0, d, 12 - d, (12 - d) * (4.0 + k % 7),
                       CASE WHEN d = 12 THEN NULL ELSE 9.0 + k % 7 END
                FROM generate_series(1, :services) s,
                     generate_series(CAST(:lo AS timestamptz), CAST(:hi AS timestamptz) - interval '1 minute',
                                     interval '1 minute') m,
                     generate_series(1, :n) k,
                     LATERAL (SELECT CASE WHEN extract(minute FROM m) = k THEN 12 ELSE 0 END AS d) x
                ORDER BY m, s, k  -- as the engine writes: a minute of every instance at a time
            """), {"services": services, "n": INSTANCES, "lo": at, "hi": upto}).rowcount
        at = upto
    with engine.begin() as c:
        c.execute(text("""
            INSERT INTO instance_checks_1d (service_id, day, instance_id, checks, up, degraded, down, latency_n,
                                            latency_sum_ms, latency_max_ms)
            SELECT service_id, (minute AT TIME ZONE 'UTC')::date, instance_id, sum(checks), sum(up), sum(degraded),
                   sum(down), sum(latency_n), sum(latency_sum_ms), max(latency_max_ms)
            FROM instance_checks_1m GROUP BY 1, 2, 3
        """))
        # the service: down 60 s every 6 hours; each instance: down 60 s once a day
        c.execute(text("""
            INSERT INTO service_health_transitions (service_id, from_state, to_state, at)
            SELECT :sid, f, t, at FROM (
                SELECT 'unknown' AS f, 'healthy' AS t, CAST(:lo AS timestamptz) AS at
                UNION ALL SELECT 'healthy', 'unhealthy', h FROM generate_series(CAST(:lo AS timestamptz)
                    + interval '3 hours', :hi, interval '6 hours') h
                UNION ALL SELECT 'unhealthy', 'healthy', h + interval '60 seconds' FROM generate_series(
                    CAST(:lo AS timestamptz) + interval '3 hours', :hi, interval '6 hours') h) x
        """), {"sid": SID, "lo": start, "hi": end})
        c.execute(text("""
            INSERT INTO instance_health_transitions (service_id, instance_id, from_state, to_state, at)
            SELECT :sid, k, f, t, at FROM generate_series(1, :n) k, LATERAL (
                SELECT 'unknown' AS f, 'healthy' AS t, CAST(:lo AS timestamptz) AS at
                UNION ALL SELECT 'healthy', 'unhealthy', d + k * interval '1 minute'
                    FROM generate_series(CAST(:lo AS timestamptz), :hi, interval '1 day') d
                UNION ALL SELECT 'unhealthy', 'healthy', d + (k + 1) * interval '1 minute'
                    FROM generate_series(CAST(:lo AS timestamptz), :hi, interval '1 day') d) x
        """), {"sid": SID, "n": INSTANCES, "lo": start, "hi": end})
        for table in ("instance_checks_1m", "instance_checks_1d", "service_health_transitions",
                      "instance_health_transitions"):
            c.execute(text(f"ANALYZE {table}"))
    return rows


def size_per_row(engine: Engine, day: datetime) -> tuple[int, int]:
    """Rows and pg_total_relation_size (heap + primary key + toast) of one full day partition."""
    name = partitions.partition_name(day.date(), partitions.CHECKS)
    with engine.connect() as c:
        rows = c.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
        size = c.execute(text("SELECT pg_total_relation_size(CAST(:n AS regclass))"), {"n": name}).scalar_one()
    return int(rows), int(size)


def main() -> int:
    """Seed, time ours and the minute-only peers, measure the size; exit non-zero over 100 ms."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--noise", type=int, default=9, help="other services of 20 instances each")
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=args.days)
    with scratch_database() as url, tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp:
        engine = make_engine(url)
        began = time.perf_counter()
        rows = seed(engine, 1 + args.noise, start, end)
        print(f"seeded {rows:,d} minute rows ({1 + args.noise} services x {INSTANCES} instances x {args.days} days) "
              f"in {time.perf_counter() - began:.0f} s")
        with engine.begin() as c:
            # the same columns and primary key, one table
            c.execute(text("CREATE TABLE checks_plain (LIKE instance_checks_1m INCLUDING ALL)"))
            c.execute(text("INSERT INTO checks_plain SELECT * FROM instance_checks_1m"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            # as autovacuum leaves them: visibility maps set (index-only scans), statistics current
            for table in ("instance_checks_1m", "instance_checks_1d", "checks_plain"):
                c.execute(text(f"VACUUM ANALYZE {table}"))
        sessions = make_session_factory(engine)
        ids = list(range(1, INSTANCES + 1))
        now = datetime.now(UTC)
        window = (now - timedelta(days=30), now)

        def queries() -> tuple[history.Availability, dict[int, history.Availability], dict[int, int]]:
            with sessions() as s:
                return (history.service_availability(s, SID, *window),
                        history.instance_availability(s, SID, ids, *window),
                        history.window_checks(s, SID, *window))

        def minutes_only(table: str) -> Callable[[], object]:
            sql = text(f"SELECT instance_id, sum(checks) FROM {table} WHERE service_id = :sid AND minute >= :a "
                       "AND minute < :b GROUP BY instance_id")

            def run() -> object:
                with sessions() as s:
                    return s.execute(sql, {"sid": SID, "a": window[0], "b": window[1]}).all()
            return run

        answer = queries()
        full_day = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        day_rows, day_bytes = size_per_row(engine, full_day)
        # the engine's upkeep at start must keep the seeded days
        settings = Settings(database_url=url, data_dir=Path(tmp), jwt_secret=SecretStr(SECRET),
                            admin_password=SecretStr("bench-admin-password"), retention_days=args.days + 2)
        rt = Runtime.open(settings)
        try:
            client = create_app(rt).test_client()
            token, _ = TokenIssuer(SECRET, 3600, SystemClock()).issue("admin", Role.ADMIN, 0)  # the first admin
            client.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token
            body: Any = client.get(f"/api/services/{SID}/uptime?window=30d").json
            assert body["checks"] > 0.99 * INSTANCES * 12 * 1440 * 30, body  # the whole month was read
            endpoint_ms = median_ms(lambda: client.get(f"/api/services/{SID}/uptime?window=30d").json)
        finally:
            rt.stop()
        results = {
            "endpoint (HTTP, auth, queries, JSON)": endpoint_ms,
            "ours: db.history queries": median_ms(queries),
            "checks from minutes, partitioned": median_ms(minutes_only("instance_checks_1m")),
            "checks from minutes, plain table": median_ms(minutes_only("checks_plain")),
        }
        engine.dispose()
    for name, ms in results.items():
        print(f"{name:40s} {ms:8.1f} ms")
    print(f"answer: uptime {body['uptimePercent']} %, {body['checks']:,d} checks, {body['incidents']} incidents, "
          f"{body['downtimeSeconds']:.0f} s down (queries: {answer[0].uptime_percent} %)")
    ours = results["endpoint (HTTP, auth, queries, JSON)"]
    plain = results["checks from minutes, plain table"]
    print(f"ratio: minute rows from a plain table / our whole endpoint = {plain / ours:.1f}x; "
          f"ours {ours:.1f} ms for 30 days of {INSTANCES} instances (goal <= 100 ms)")
    per_row = day_bytes / day_rows
    target_rows = 10_000 * 1440 * 30
    print(f"size: one day partition {day_rows:,d} rows, {day_bytes / 2**20:.1f} MiB = {per_row:.1f} bytes/row; "
          f"10,000 instances x 30 days (checked every 5 s: 12 checks a row) = {target_rows:,d} rows "
          f"= {target_rows * per_row / 2**30:.1f} GiB")
    return 0 if ours <= 100 else 1


if __name__ == "__main__":
    sys.exit(main())
