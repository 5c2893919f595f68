"""A large synthetic metrics data set for benchmarks: N services x D days at a fixed cadence, in SQL.

The rows are a benchmark fixture, not measurements: services are named bench-01.., values are
smooth functions of time (a daily cycle per service) so charts of them look like traffic. Rows go
through the real table, so the daily partitions and the 1-minute rollup are built as in production,
and in time order, as the collector writes them (a time index over service-ordered rows would read
every service's block range for the last minute).
Usage: python -m bench.seed_metrics --database-url URL [--services 20] [--days 7] [--cadence 1.2]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from bench.common import scratch_database  # noqa: F401  (puts the repo on sys.path)
from db.partitions import create_day
from db.session import make_engine, make_session_factory, migrate

_DAY = """
INSERT INTO metrics (service_name, "timestamp", bucket_seconds, request_count, error_count, latency_avg_ms,
                     latency_p50_ms, latency_p95_ms, latency_p99_ms, cpu_percent, memory_mb, instances_scraped)
SELECT name, at, :cadence, requests, (requests * (0.002 + 0.01 * s / 20))::int,
       base * 1.1, base, base * 2.2, base * 3.5, least(95, 5 + requests * 0.4), 80 + 3 * s, 2
FROM (
    SELECT s, 'bench-' || lpad(s::text, 2, '0') AS name, at,
           (40 + 25 * sin(2 * pi() * (extract(epoch FROM at) / 86400 + s / 20.0)) + s)::int AS requests,
           15 + s + 5 * sin(2 * pi() * extract(epoch FROM at) / 3600) AS base
    FROM generate_series(1, :services) AS s,
         generate_series(CAST(:start AS timestamptz), CAST(:end AS timestamptz) - interval '1 microsecond',
                         make_interval(secs => :cadence)) AS at
) AS rows
ORDER BY at, s
"""


def service_names(services: int) -> list[str]:
    """The names of the seeded services: bench-01, bench-02, ..."""
    return [f"bench-{s:02d}" for s in range(1, services + 1)]


def seed(url: str, *, services: int = 20, days: float = 7.0, cadence_s: float = 1.2,
         end: datetime | None = None) -> int:
    """Fill [end - days, end) and return the number of rows written; one statement per day (partition)."""
    engine = make_engine(url)
    migrate(engine)
    sessions = make_session_factory(engine)
    end = end or datetime.now(UTC)
    start = end - timedelta(days=days)
    total = 0
    try:
        chunk = start
        while chunk < end:
            upper = min(end, datetime.combine(chunk.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC))
            with sessions.begin() as s:
                create_day(s, chunk.date())
                total += s.execute(text(_DAY), {"cadence": cadence_s, "services": services, "start": chunk,
                                                "end": upper}).rowcount  # type: ignore[attr-defined]
            chunk = upper
        # what autovacuum does on a server that has been running a while: statistics, and the time index's
        # block ranges summarised (a fresh bulk load leaves them unsummarised, so that index would read them all)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM (ANALYZE) metrics, metrics_1m"))
    finally:
        engine.dispose()
    return total


def main() -> int:
    """Seed the given database."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--cadence", type=float, default=1.2, help="seconds between a service's rows")
    args = parser.parse_args()
    began = time.perf_counter()
    rows = seed(args.database_url, services=args.services, days=args.days, cadence_s=args.cadence)
    print(f"seeded {rows:,d} metric rows ({args.services} services x {args.days:g} days) "
          f"in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
