"""Metric rows per second into PostgreSQL: per-row autocommit INSERT vs executemany in one transaction vs our writer.

All three write the same rows into the product's table (`metrics`: partitioned by day, primary key
(service, time), and the statement trigger that keeps the 1-minute rollup) on the same server in
one run; that is the ratio the goal is about: the same rows, the same rollup. "our writer" is the
engine's BatchWriter end to end: events submitted, then flushed (binary COPY in batches of
WRITER_BATCH_ROWS, one transaction each). A statement trigger costs a row-at-a-time writer once per
row, so the run repeats the three with the trigger disabled (raw rows only, no rollup) to show
what each costs without it. The peers run for a time budget, ours for --rows.
Usage: python -m bench.ingest [--rows 200000] [--budget 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg

from bench.common import scratch_database
from contract.events import MetricEvent
from db.session import conninfo, make_engine, make_session_factory
from engine.clock import SystemClock
from engine.store.writer import BatchWriter

COLUMNS = ("service_name", "timestamp", "bucket_seconds", "request_count", "error_count", "latency_avg_ms",
           "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "cpu_percent", "memory_mb", "instances_scraped")
NAMES = ", ".join(f'"{c}"' for c in COLUMNS)
INSERT = f"INSERT INTO metrics ({NAMES}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
SERVICES = 50


def events(label: str, count: int, start: datetime) -> list[MetricEvent]:
    """`count` rows for SERVICES services, a millisecond apart per service (unique keys, one day)."""
    return [
        MetricEvent(f"{label}-{i % SERVICES:02d}", start + timedelta(milliseconds=i // SERVICES), 5.0,
                    100 + i % 37, i % 3, 12.5, 11.0, 30.0, 55.0, 17.0, 128.0, 2)
        for i in range(count)
    ]


def params(e: MetricEvent) -> tuple[object, ...]:
    """One row's INSERT parameters."""
    return (e.service_name, e.timestamp, e.bucket_seconds, e.request_count, e.error_count, e.latency_avg_ms,
            e.latency_p50_ms, e.latency_p95_ms, e.latency_p99_ms, e.cpu_percent, e.memory_mb, e.instances_scraped)


def per_row(url: str, rows: list[MetricEvent], budget_s: float) -> tuple[int, float]:
    """One INSERT per row, autocommit (the simplest writer): rows written within the time budget."""
    done = 0
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        began = time.perf_counter()
        for e in rows:
            conn.execute(INSERT, params(e))
            done += 1
            if done % 100 == 0 and time.perf_counter() - began > budget_s:
                break
        return done, time.perf_counter() - began


def executemany(url: str, rows: list[MetricEvent], budget_s: float) -> tuple[int, float]:
    """psycopg's executemany (pipelined) in one transaction, 1,000 rows a call, within the time budget."""
    done = 0
    with psycopg.connect(conninfo(url)) as conn:
        began = time.perf_counter()
        with conn.cursor() as cur:
            while done < len(rows) and time.perf_counter() - began < budget_s:
                cur.executemany(INSERT, [params(e) for e in rows[done:done + 1000]])
                done += min(1000, len(rows) - done)
        conn.commit()
        return done, time.perf_counter() - began


def writer(url: str, rows: list[MetricEvent]) -> tuple[int, float]:
    """The engine's BatchWriter: submit every event, flush; the clock stops when the last batch committed."""
    engine = make_engine(url)
    try:
        w = BatchWriter(make_session_factory(engine), SystemClock(), max_buffer=len(rows) + 1)
        began = time.perf_counter()
        for e in rows:
            w.submit(e)
        written = w.flush()
        elapsed = time.perf_counter() - began
        assert w.status().rejected == 0 and written == len(rows), w.status()
        return written, elapsed
    finally:
        engine.dispose()


def run(url: str, label: str, count: int, budget_s: float, start: datetime) -> dict[str, float]:
    """The three writers on fresh keys; rows/s each, printed."""
    results = {
        "per-row INSERT, autocommit": per_row(url, events(f"{label}-row", count, start), budget_s),
        "executemany, one transaction": executemany(url, events(f"{label}-many", count, start), budget_s),
        "our writer (binary COPY batches)": writer(url, events(f"{label}-copy", count, start)),
    }
    rates = {name: n / s for name, (n, s) in results.items()}
    for name, (n, s) in results.items():
        print(f"  {name:34s} {n:>9,d} rows in {s:6.2f} s = {rates[name]:>10,.0f} rows/s")
    return rates


def main() -> int:
    """Run the three side by side, with and without the rollup trigger, and print rows/s and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--budget", type=float, default=5.0, help="seconds each peer writes for")
    args = parser.parse_args()
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(hours=1)
    with scratch_database() as url:
        print("the product's table (daily partitions, primary key, rollup trigger):")
        rates = run(url, "full", args.rows, args.budget, start)
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            conn.execute("ALTER TABLE metrics DISABLE TRIGGER metrics_rollup")
        print("raw rows only (rollup trigger disabled), for comparison:")
        raw = run(url, "raw", args.rows, args.budget, start)
    ours = rates["our writer (binary COPY batches)"]
    vs_row = ours / rates["per-row INSERT, autocommit"]
    vs_many = ours / rates["executemany, one transaction"]
    raw_ours = raw["our writer (binary COPY batches)"]
    print(f"ratio: our writer / per-row INSERT = {vs_row:.1f}x (goal >= 20x), / executemany = {vs_many:.1f}x; "
          f"our writer = {ours:,.0f} rows/s (goal >= 50,000)")
    print(f"raw rows only: our writer / per-row INSERT = {raw_ours / raw['per-row INSERT, autocommit']:.1f}x, "
          f"/ executemany = {raw_ours / raw['executemany, one transaction']:.1f}x")
    return 0 if vs_row >= 20 and ours >= 50_000 else 1


if __name__ == "__main__":
    sys.exit(main())
