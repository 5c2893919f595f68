"""The batch writer against a real PostgreSQL: batching, coalescing, outages, the bound."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from contract.events import InstanceHealthEvent, LoadTestSampleEvent, LogEvent, MetricEvent, ServiceHealthEvent
from db.models import Instance, LogEntry, MetricMinute, MetricRow, Service
from db.session import make_engine, make_session_factory
from engine.clock import FakeClock
from engine.store.writer import BatchWriter
from tests.conftest import wait_for


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


class ProducingWhileFailing:
    """A session factory whose next begin() first runs `during` (producers submitting while the write is under
    way), then opens a session on `factory`."""

    def __init__(self, factory, during=None):
        self.factory = factory
        self.during = during

    def begin(self):
        during, self.during = self.during, None
        if during is not None:
            during()
        return self.factory.begin()


# sequence number -> (instance or service id, status) for the health events among the logs
INSTANCE_HEALTH = {2: (3, "degraded"), 9: (1, "healthy"), 14: (1, "degraded"), 20: (2, "unhealthy"),
                   23: (2, "healthy"), 25: (1, "unhealthy"), 31: (1, "healthy")}
SERVICE_HEALTH = {16: "degraded", 29: "healthy"}


def numbered_event(clock, n):
    """Event n of one stream: a health event where the tables above say so, else a log line; one second apart."""
    clock.advance(1)
    if n in INSTANCE_HEALTH:
        instance_id, status = INSTANCE_HEALTH[n]
        return InstanceHealthEvent(instance_id, status, clock.now(), float(n), None)
    if n in SERVICE_HEALTH:
        return ServiceHealthEvent(1, SERVICE_HEALTH[n], clock.now())
    return log_event(clock, n)


def test_an_outage_past_the_buffer_drops_the_oldest_and_writes_the_backlog_in_order(sessions):
    """max_buffer 25, batch_size 10: 33 events across a failed write, the newest 25 written in order afterwards."""
    clock = FakeClock()
    with sessions.begin() as s:
        s.add(Service(name="orders", instances=[Instance(url=f"http://127.0.0.1:{9000 + i}") for i in (1, 2, 3)]))
    dead = make_session_factory(make_engine("postgresql://postgres@127.0.0.1:1/none",
                                            connect_args={"connect_timeout": 1}))
    events = {}

    def submit(numbers):
        for n in numbers:
            events[n] = numbered_event(clock, n)
            writer.submit(events[n])

    writer = BatchWriter(ProducingWhileFailing(dead, lambda: submit(range(10, 30))), clock,  # type: ignore[arg-type]
                         max_buffer=25, batch_size=10)
    submit(range(10))
    assert writer.flush() == 0  # took 0..9; 10..29 arrived meanwhile, so only 5 of the batch fit back
    assert (writer.status().pending, writer.status().dropped) == (25, 5)
    assert writer.flush() == 0  # still down: nothing lost by trying again
    assert (writer.status().pending, writer.status().dropped) == (25, 5)
    submit(range(30, 33))  # a full buffer: each one pushes out the oldest
    status = writer.status()
    assert (status.database_ok, status.pending, status.dropped, status.written) == (False, 25, 8, 0)

    writer._sessions = sessions  # the database is back
    assert writer.flush() == 25  # three batches: 8..17, 18..27, 28..32
    status = writer.status()
    assert (status.database_ok, status.pending, status.dropped, status.written) == (True, 0, 8, 25)
    kept = range(8, 33)
    with sessions() as s:
        logs = [m for (m,) in s.execute(select(LogEntry.message).order_by(LogEntry.id))]
        assert logs == [f"event {n}" for n in kept if n not in INSTANCE_HEALTH and n not in SERVICE_HEALTH]
        instances = {i.id: (i.status, i.latency_ms, i.last_health_check) for i in s.scalars(select(Instance))}
        service = s.get(Service, 1)
        assert (service.status, service.last_health_check) == ("healthy", events[29].checked_at)
    # newest wins across the batches: the last health event kept of each instance is what is stored
    assert instances == {1: ("healthy", 31.0, events[31].checked_at), 2: ("healthy", 23.0, events[23].checked_at),
                         3: ("unknown", None, None)}  # instance 3's only event was among the dropped


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


def metric_event(service, at, requests=10):
    return MetricEvent(service, at, 5.0, requests, 1, 20.0, 15.0, 40.0, 80.0, 12.5, 64.0, 1)


def test_copied_metric_rows_feed_the_minute_rollup(sessions):
    clock = FakeClock()
    writer = BatchWriter(sessions, clock)
    for k in range(24):  # two minutes of 5-second buckets
        writer.submit(metric_event("orders", clock.now() + timedelta(seconds=5 * k), requests=k))
    assert writer.flush() == 24
    with sessions() as s:
        minutes = [(m.request_count, m.buckets, m.latency_requests) for m in
                   s.scalars(select(MetricMinute).order_by(MetricMinute.minute))]
    assert minutes == [(sum(range(12)), 12, sum(range(12))), (sum(range(12, 24)), 12, sum(range(12, 24)))]


def test_a_batch_written_twice_is_not_counted_twice(sessions):
    """A commit whose acknowledgement was lost is retried: the copy fails on the key, the row-safe path skips it."""
    clock = FakeClock()
    writer = BatchWriter(sessions, clock)
    first = [metric_event("orders", clock.now() + timedelta(seconds=5 * k)) for k in range(3)]
    for e in first:
        writer.submit(e)
    writer.flush()
    for e in [*first, metric_event("orders", clock.now() + timedelta(seconds=15))]:
        writer.submit(e)
    writer.submit(log_event(clock, 1))
    assert writer.flush() == 5
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(MetricRow)) == 4
        assert s.scalar(select(func.sum(MetricMinute.request_count))) == 40
        assert s.scalar(select(func.count()).select_from(LogEntry)) == 1
    status = writer.status()
    assert (status.rejected, status.written, status.database_ok) == (0, 8, True)


def test_rows_the_database_refuses_are_counted_and_the_rest_written(sessions):
    clock = FakeClock()
    writer = BatchWriter(sessions, clock)
    writer.submit(LoadTestSampleEvent(999, 0, clock.now(), 1, 1, 0, 0, {}, {}))  # no such load test
    writer.submit(log_event(clock, 1))
    writer.submit(metric_event("orders", clock.now()))
    assert writer.flush() == 3
    status = writer.status()
    assert (status.rejected, status.written, status.pending, status.database_ok) == (1, 2, 0, True)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LogEntry)) == 1
        assert s.scalar(select(func.count()).select_from(MetricRow)) == 1


def test_a_full_batch_is_written_without_waiting_for_the_interval(sessions):
    clock = FakeClock()
    writer = BatchWriter(sessions, clock, flush_interval=60, batch_size=10)
    writer.start()
    try:
        for n in range(10):
            writer.submit(log_event(clock, n))
        assert wait_for(lambda: writer.status().written == 10, timeout=5)
    finally:
        writer.stop()


def test_stopping_while_the_database_is_away_counts_what_is_lost(sessions):
    clock = FakeClock()
    dead = make_session_factory(make_engine("postgresql://postgres@127.0.0.1:1/none",
                                            connect_args={"connect_timeout": 1}))
    writer = BatchWriter(dead, clock)
    for n in range(4):
        writer.submit(log_event(clock, n))
    writer.stop()
    status = writer.status()
    assert (status.pending, status.dropped, status.written) == (0, 4, 0)
