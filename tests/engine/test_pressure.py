"""Real pressure: the engine's RSS rises and falls with a memory leak; database overload is real and cancellable."""

from __future__ import annotations

import time

import psutil
import pytest
from sqlalchemy import text

from contract.chaos import Intensity
from db.session import conninfo
from engine.chaos.pressure import OVERLOAD_APP_NAME, DatabaseOverload, MemoryLeak
from engine.clock import FakeClock
from tests.conftest import wait_for

MB = 1 << 20


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / MB


def idle_leak(rate_mb_s: float, cap_mb: int, clock: FakeClock) -> MemoryLeak:
    """A started leak whose thread never ticks on its own: the test allocates what is due with allocate_due()."""
    leak = MemoryLeak(rate_mb_s=rate_mb_s, cap_mb=cap_mb, tick_s=3600, clock=clock)
    leak.start()
    return leak


def test_memory_leak_holds_its_rate_times_the_time_since_start():
    clock = FakeClock()
    leak = idle_leak(100, 1000, clock)
    try:
        assert leak.allocate_due() == 0  # no time has passed
        clock.advance(0.25)
        assert leak.allocate_due() == 25
        clock.advance(2**-7)  # 25.78 MB due: whole blocks only (the advances are exact binary fractions)
        assert leak.allocate_due() == 25
        clock.advance(0.75 - 2**-7)  # 1 s since start
        assert (leak.allocate_due(), leak.held_mb, leak.due_mb()) == (100, 100, 100)
    finally:
        leak.stop()
    assert leak.held_mb == 0


def test_memory_leak_is_held_to_its_cap_whatever_the_rate():
    clock = FakeClock()
    leak = idle_leak(10_000, 64, clock)
    try:
        clock.advance(2**-10)  # 9.77 MB due
        assert leak.allocate_due() == 9
        clock.advance(1.0)  # 10,010 MB by the rate
        assert (leak.due_mb(), leak.allocate_due()) == (64, 64)
        clock.advance(3600)
        assert leak.allocate_due() == 64 and leak.held_mb == 64
    finally:
        leak.stop()


def test_memory_leak_thread_allocates_resident_memory_as_its_clock_moves_and_releases_it():
    clock = FakeClock()
    before = rss_mb()
    leak = MemoryLeak(rate_mb_s=100, cap_mb=1000, tick_s=0.01, clock=clock)
    leak.start()
    try:
        clock.advance(0.5)
        assert wait_for(lambda: leak.held_mb == 50, 10.0)
        clock.advance(0.5)
        assert wait_for(lambda: leak.held_mb == 100, 10.0)
        assert rss_mb() - before >= 90  # resident, not just reserved
    finally:
        leak.stop()
    assert leak.held_mb == 0
    assert wait_for(lambda: rss_mb() - before < 30, 5.0)


def active_overload(db_engine):
    with db_engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE :n"),
                         {"n": OVERLOAD_APP_NAME + "%"}).scalar_one()


@pytest.mark.parametrize("intensity, connections", [(Intensity.LOW, 1), (Intensity.HIGH, 6)], ids=["low", "high"])
def test_overload_runs_real_statements_and_stop_leaves_none(clean_db, database_url, intensity, connections):
    errors: list[str] = []
    overload = DatabaseOverload(conninfo(database_url), intensity, on_error=errors.append)
    overload.start()
    try:
        assert wait_for(lambda: active_overload(clean_db) == connections, 5.0)
        assert wait_for(lambda: overload.statements >= 1, 10.0)
    finally:
        overload.stop()
    # stop() has cancelled, closed and terminated: its connections are closed as it returns, and no backend of it
    # is left (one PostgreSQL was still tearing down may take a moment to leave pg_stat_activity)
    assert [c.closed for c in overload._conns] == [True] * connections
    assert wait_for(lambda: active_overload(clean_db) == 0, 0.5)
    assert errors == []  # the statements stop() cancelled are not failures


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
