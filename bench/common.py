"""Shared bits of the benchmarks: a real demo instance process on loopback, medians, ratios."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.fleet.demo import start_demo_instance
from engine.fleet.processes import LoopbackInstance, free_port, stop_all, wait_ready


@contextmanager
def demo_target(port_base: int = 18100) -> Iterator[LoopbackInstance]:
    """One demo service process on loopback, stopped afterwards."""
    instance = start_demo_instance("bench", free_port(port_base, set()), seed=1)
    try:
        wait_ready([instance])
        yield instance
    finally:
        stop_all([instance.process])


def median_ms(run: Callable[[], object], repeat: int = 7) -> float:
    """Median milliseconds of `repeat` runs after one warm-up."""
    run()
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


def median_us(samples_s: list[float]) -> float:
    """Median of durations in seconds, as microseconds."""
    return statistics.median(samples_s) * 1e6


def report(title: str, ours: float, peer: float, peer_name: str, unit: str = "µs", limit: float | None = None) -> bool:
    """Print one comparison line; return whether ours/peer is within limit (always True without one)."""
    ratio = ours / peer
    verdict = "" if limit is None else (f"  (limit {limit:.2f}x: {'ok' if ratio <= limit else 'OVER'})")
    print(f"{title}: ours {ours:.2f} {unit}, {peer_name} {peer:.2f} {unit}, ratio {ratio:.3f}x{verdict}")
    return limit is None or ratio <= limit


@contextmanager
def scratch_database(keep: str | None = None) -> Iterator[str]:
    """A migrated database for one benchmark run: on DATABASE_URL's server, else an embedded one in a temp dir.

    Dropped afterwards unless `keep` names it (then it is reused when it exists, e.g. a seeded data set).
    """
    import os
    import tempfile
    import uuid

    from sqlalchemy import make_url, text

    from db.session import EmbeddedPostgres, make_engine, migrate, sqlalchemy_url

    server = os.environ.get("DATABASE_URL")
    embedded = None
    tmp = None
    if not server:
        tmp = tempfile.TemporaryDirectory(prefix="mm-bench-")
        embedded = EmbeddedPostgres(Path(tmp.name))
        server = embedded.start()
    name = keep or f"mm_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            if not c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
                c.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(sqlalchemy_url(server)).set(database=name).render_as_string(hide_password=False)
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url
    finally:
        if keep is None:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if embedded is not None:
            embedded.stop()
        if tmp is not None:
            tmp.cleanup()
