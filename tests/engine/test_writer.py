"""The batch writer against a real PostgreSQL: batching, coalescing, outages, the bound."""

from __future__ import annotations

from sqlalchemy import func, select

from db.models import Instance, LogEntry, MetricRow, Service
from db.session import make_engine, make_session_factory
from engine.clock import FakeClock
from engine.events import InstanceHealthEvent, LogEvent, MetricEvent, ServiceHealthEvent
from engine.writer import BatchWriter


def log_event(clock, n):
    return LogEvent(clock.now(), "INFO", "test", f"event {n}", {"n": n})


def test_flush_writes_all_kinds_in_one_batch(sessions):
    clock = FakeClock()
    with sessions.begin() as s:
        svc = Service(name="orders", instances=[Instance(url="http://127.0.0.1:9001")])
        s.add(svc)
    writer = BatchWriter(sessions, clock)
    for n in range(3):
        writer.submit(log_event(clock, n))
    writer.submit(MetricEvent("orders", clock.now(), 5.0, 0, 0, None, None, None, None, 12.5, 40.0, 1))
    writer.submit(InstanceHealthEvent(1, "degraded", clock.now(), 900.0, "slow"))
    writer.submit(InstanceHealthEvent(1, "healthy", clock.now(), 12.0, None))  # newest wins
    writer.submit(ServiceHealthEvent(1, "healthy", clock.now()))
    assert writer.flush() == 7
    with sessions() as s:
        assert [m for (m,) in s.execute(select(LogEntry.message).order_by(LogEntry.id))] == [
            "event 0", "event 1", "event 2"
        ]
        assert s.scalar(select(LogEntry.metadata_).where(LogEntry.message == "event 2")) == {"n": 2}
        metric = s.scalars(select(MetricRow)).one()
        assert (metric.cpu_percent, metric.memory_mb, metric.latency_p99_ms) == (12.5, 40.0, None)
        inst = s.get(Instance, 1)
        assert (inst.status, inst.latency_ms, inst.last_error) == ("healthy", 12.0, None)
        assert s.get(Service, 1).status == "healthy"
    status = writer.status()
    assert (status.database_ok, status.pending, status.written, status.dropped) == (True, 0, 7, 0)


def test_database_outage_buffers_then_writes_when_it_returns(sessions, database_url):
    """Point the writer at a dead server, then at the real one: nothing acknowledged is lost."""
    clock = FakeClock()
    dead_engine = make_engine("postgresql://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    dead = make_session_factory(dead_engine)
    writer = BatchWriter(dead, clock, max_buffer=100)
    for n in range(10):
        writer.submit(log_event(clock, n))
    assert writer.flush() == 0
    status = writer.status()
    assert status.database_ok is False and status.pending == 10 and status.last_error
    writer._sessions = sessions  # the database is back
    assert writer.flush() == 10
    assert writer.status().database_ok is True
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LogEntry)) == 10
        assert s.scalar(select(func.min(LogEntry.message))) == "event 0"


def test_full_buffer_drops_oldest_and_counts(sessions):
    clock = FakeClock()
    writer = BatchWriter(sessions, clock, max_buffer=5)
    for n in range(8):
        writer.submit(log_event(clock, n))
    assert writer.status().dropped == 3
    writer.flush()
    with sessions() as s:
        assert [m for (m,) in s.execute(select(LogEntry.message).order_by(LogEntry.id))] == [
            f"event {n}" for n in range(3, 8)
        ]


def test_stop_flushes_what_is_buffered(sessions):
    clock = FakeClock()
    writer = BatchWriter(sessions, clock, flush_interval=60)
    writer.start()
    for n in range(50):
        writer.submit(log_event(clock, n))
    writer.stop()
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LogEntry)) == 50


def test_large_backlog_is_written_in_batches(sessions):
    clock = FakeClock()
    writer = BatchWriter(sessions, clock, batch_size=100, max_buffer=10_000)
    for n in range(1_050):
        writer.submit(log_event(clock, n))
    assert writer.flush() == 1_050
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LogEntry)) == 1_050
