"""Real pressure: the engine's RSS rises and falls with a memory leak; database overload is real and cancellable."""

from __future__ import annotations

import time

import psutil
import pytest
from sqlalchemy import text

from contract.chaos import Intensity
from db.session import conninfo
from engine.chaos.pressure import OVERLOAD_APP_NAME, DatabaseOverload, MemoryLeak
from tests.conftest import wait_for

MB = 1 << 20


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / MB


def test_memory_leak_raises_rss_at_its_rate_and_releases_it():
    before = rss_mb()
    leak = MemoryLeak(rate_mb_s=100, cap_mb=1000)
    leak.start()
    time.sleep(1.05)
    held = leak.held_mb
    grown = rss_mb() - before
    leak.stop()
    assert 90 <= held <= 110 and grown >= 0.9 * held  # resident, not just reserved
    assert wait_for(lambda: rss_mb() - before < 30, 2.0)
    assert leak.held_mb == 0


def test_memory_leak_is_held_to_its_cap_whatever_the_rate():
    leak = MemoryLeak(rate_mb_s=10_000, cap_mb=64)
    leak.start()
    try:
        assert wait_for(lambda: leak.held_mb == 64, 2.0)
        time.sleep(0.3)
        assert leak.held_mb == 64
    finally:
        leak.stop()


def active_overload(db_engine):
    with db_engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE :n"),
                         {"n": OVERLOAD_APP_NAME + "%"}).scalar_one()


@pytest.mark.parametrize("intensity, connections", [(Intensity.LOW, 1), (Intensity.HIGH, 6)], ids=["low", "high"])
def test_overload_runs_real_statements_and_stop_leaves_none(clean_db, database_url, intensity, connections):
    overload = DatabaseOverload(conninfo(database_url), intensity)
    overload.start()
    try:
        assert wait_for(lambda: active_overload(clean_db) == connections, 2.0)
        time.sleep(0.5)
    finally:
        began = time.monotonic()
        overload.stop()
    assert time.monotonic() - began < 1.0
    assert wait_for(lambda: active_overload(clean_db) == 0, 0.5)


def test_high_overload_slows_the_engines_own_writes(clean_db, database_url):
    def write_ms() -> float:
        time.sleep(0.05)  # spaced like the batch writer's flushes, not back to back
        began = time.perf_counter()
        with clean_db.begin() as c:
            c.execute(text("INSERT INTO logs (timestamp, level, source, message) VALUES (now(), 'INFO', 't', 'x')"))
        return (time.perf_counter() - began) * 1000

    baseline = sorted(write_ms() for _ in range(20))[10]
    overload = DatabaseOverload(conninfo(database_url), Intensity.HIGH)
    overload.start()
    try:
        time.sleep(0.3)
        during = sum(write_ms() for _ in range(20)) / 20
    finally:
        overload.stop()
    assert during > baseline + 50  # mean: writes that meet a lock burst wait up to 400 ms for it
