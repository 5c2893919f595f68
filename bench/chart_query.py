"""The dashboard's chart query over 10 million metric rows: ours (daily partitions + rollup) vs a plain table.

One run seeds 20 services x 7 days (about 10M rows, bench.seed_metrics) into a scratch database,
copies them into a plain unpartitioned table with a (service, time) index, and times the query
the Metrics page runs for 20 services x 24 h in 1-minute buckets:
- ours: db.series.metric_series, which reads the 1-minute rollup for steps of a minute or more;
- the same date_bin query over the raw rows of the partitioned table (what the rollup saves);
- the same date_bin query over the plain table (the peer: one big indexed table).
Each is the median of 5 runs after a warm-up. Usage: python -m bench.chart_query [--days 7] [--cadence 1.2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from bench.common import scratch_database
from bench.seed_metrics import seed, service_names
from db import series
from db.session import make_engine, make_session_factory


def timed(run: Callable[[], int], repeat: int = 5) -> tuple[float, int]:
    """Median milliseconds of `repeat` runs after one warm-up, and the rows the last run returned."""
    rows = run()
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        rows = run()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples), rows


def main() -> int:
    """Seed, build the plain peer, time the three queries, print ms and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--cadence", type=float, default=1.2)
    args = parser.parse_args()
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    with scratch_database() as url:
        began = time.perf_counter()
        total = seed(url, services=args.services, days=args.days, cadence_s=args.cadence, end=end)
        print(f"seeded {total:,d} rows in {time.perf_counter() - began:.0f} s")
        engine = make_engine(url)
        with engine.begin() as c:
            c.execute(text("CREATE TABLE metrics_plain AS SELECT * FROM metrics"))
            c.execute(text('CREATE INDEX ON metrics_plain (service_name, "timestamp")'))
            c.execute(text("ANALYZE metrics_plain"))
        sessions = make_session_factory(engine)
        names = service_names(args.services)
        start = end - timedelta(hours=24)
        params = {"step": 60, "services": names, "start": start, "end": end}

        def ours() -> int:
            with sessions() as s:
                return len(series.metric_series(s, names, start, end, max_points=1440))

        def raw(table: str) -> Callable[[], int]:
            sql = series._RAW.replace("FROM metrics", f"FROM {table}")

            def run() -> int:
                with sessions() as s:
                    s.execute(text("SET LOCAL jit = off"))
                    s.execute(text("SET LOCAL work_mem = '64MB'"))  # as metric_series does
                    return len(series.fetch(s, sql, params))
            return run

        results = {
            "ours: partitioned + 1-min rollup": timed(ours),
            "raw rows, partitioned + indexed": timed(raw("metrics")),
            "plain table + (service, time) index": timed(raw("metrics_plain")),
        }
        engine.dispose()
    for name, (ms, rows) in results.items():
        print(f"{name:38s} {ms:9.1f} ms  ({rows:,d} points)")
    ours_ms = results["ours: partitioned + 1-min rollup"][0]
    plain_ms = results["plain table + (service, time) index"][0]
    raw_ms = results["raw rows, partitioned + indexed"][0]
    print(f"ratio: plain table / ours = {plain_ms / ours_ms:.1f}x, raw partitioned / ours = {raw_ms / ours_ms:.1f}x; "
          f"ours {ours_ms:.1f} ms for {args.services} services x 24 h in 1-minute buckets over {total:,d} rows "
          f"(goal <= 200 ms)")
    return 0 if ours_ms <= 200 else 1


if __name__ == "__main__":
    sys.exit(main())
