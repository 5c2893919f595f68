"""The checker's history: one rollup row per instance per closed minute, transition rows on damped changes,
the open minute and 'unknown' at close, the bounded ring of recent results; then through the real writer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from contract.events import CheckRollupEvent, InstanceTransitionEvent, ServiceTransitionEvent
from db import history
from db.models import Instance, InstanceCheckMinute, InstanceHealthTransition, Service
from engine.clock import FakeClock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.health.checker import HealthChecker
from engine.health.history import RecentChecks, minute_of
from engine.health.probe import FetchError
from engine.store.writer import BatchWriter
from tests.engine.fetch_double import fetch_by_port

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


class Collect:
    """A writer stand-in that keeps submitted events."""

    def __init__(self):
        self.events = []

    def submit(self, event):
        self.events.append(event)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


class Fleet:
    """Instance 1 answers 200 after 10 ms of fake time; instance 2 answers until `down` is set, then refuses."""

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.down = False

    def __call__(self, port: int) -> int:
        if port == 9002:
            if self.down:
                raise FetchError("ConnectError: connection refused")
            return 503
        self.clock.advance(0.010)
        return 200


def spec(ports=(9001, 9002), service_id=1):
    return ServiceSpec(id=service_id, name="orders", health_path="/health", metrics_path=None, weight=1,
                       managed=False, instances=tuple(InstanceSpec(n, service_id, f"http://127.0.0.1:{p}")
                                                      for n, p in enumerate(ports, start=1)))


def make(writer, clock, handler, *, recent=120, registry=None):
    if registry is None:
        registry = Registry()
        registry.replace((spec(),))
    checker = HealthChecker(registry, fetch_by_port(handler), writer, clock, timeout=1.0, degraded_ms=500.0, fall=2,
                            rise=2, concurrency=10, recent=recent)
    return checker, registry


def rounds(checker, clock, n, every=5.0):
    for _ in range(n):
        asyncio.run(checker.run_once())
        clock.advance(every - 0.010)  # instance 1's answer advanced the clock 10 ms


def test_one_rollup_row_per_instance_per_closed_minute():
    clock = FakeClock(T0)
    fleet = Fleet(clock)
    writer = Collect()
    checker, _ = make(writer, clock, fleet)
    rounds(checker, clock, 12)  # 12:00:00 .. 12:00:55
    assert writer.of(CheckRollupEvent) == [] and checker.open_minutes == 2  # the minute is still open
    fleet.down = True
    rounds(checker, clock, 12)  # 12:01:00 .. 12:01:55: the first round closes 12:00
    first = {e.instance_id: e for e in writer.of(CheckRollupEvent) if e.minute == T0}
    one = first[1]
    assert (one.service_id, one.minute, one.checks, one.up, one.degraded, one.down, one.latency_n) == (
        1, T0, 12, 12, 0, 0, 12)
    assert (one.latency_sum_ms, one.latency_max_ms) == (pytest.approx(120.0), pytest.approx(10.0))
    # 503: degraded; measured while instance 1 moved the shared fake clock by 10 ms
    assert (first[2].checks, first[2].up, first[2].degraded, first[2].down, first[2].latency_n) == (12, 0, 12, 0, 12)
    asyncio.run(checker.run_once())  # 12:02:00 closes 12:01
    second = {e.instance_id: e for e in writer.of(CheckRollupEvent) if e.minute == T0 + timedelta(minutes=1)}
    assert (second[2].checks, second[2].down, second[2].latency_n, second[2].latency_max_ms) == (12, 12, 0, None)
    assert len(writer.of(CheckRollupEvent)) == 4  # nothing written twice


def test_transitions_on_damped_changes_only():
    clock = FakeClock(T0)
    fleet = Fleet(clock)
    writer = Collect()
    checker, _ = make(writer, clock, fleet)
    rounds(checker, clock, 3)
    fleet.down = True
    rounds(checker, clock, 1)
    assert [(e.instance_id, e.from_state, e.to_state) for e in writer.of(InstanceTransitionEvent)] == [
        (1, "unknown", "healthy"), (2, "unknown", "degraded")]
    down_at = clock.now() + timedelta(seconds=0.010)  # the round's time: after instance 1's 10 ms answer
    rounds(checker, clock, 3)  # fall = 2: down at the second refused check
    change = writer.of(InstanceTransitionEvent)[-1]
    assert (change.instance_id, change.from_state, change.to_state, change.at) == (2, "degraded", "unhealthy",
                                                                                   down_at)
    assert change.status_code is None and "ConnectError" in (change.error or "")
    first = writer.of(InstanceTransitionEvent)[0]
    assert first.status_code == 200 and first.latency_ms == pytest.approx(10.0) and first.error is None
    assert [(e.from_state, e.to_state) for e in writer.of(ServiceTransitionEvent)] == [("unknown", "degraded")]
    assert len(writer.of(InstanceTransitionEvent)) == 3


def test_close_writes_the_open_minute_and_unknown_for_everything_known():
    clock = FakeClock(T0)
    writer = Collect()
    checker, _ = make(writer, clock, Fleet(clock))
    rounds(checker, clock, 4)
    checker.close()
    stop = clock.now()
    assert {(e.instance_id, e.checks) for e in writer.of(CheckRollupEvent)} == {(1, 4), (2, 4)}
    assert [(e.instance_id, e.to_state, e.at) for e in writer.of(InstanceTransitionEvent)][-2:] == [
        (1, "unknown", stop), (2, "unknown", stop)]
    assert writer.of(ServiceTransitionEvent)[-1].to_state == "unknown"
    assert checker.open_minutes == 0
    rounds(checker, clock, 1)  # observed again: from unknown
    assert writer.of(InstanceTransitionEvent)[-1].from_state == "unknown"


def test_a_removed_instance_and_service_become_unknown():
    clock = FakeClock(T0)
    writer = Collect()
    checker, registry = make(writer, clock, Fleet(clock))
    rounds(checker, clock, 1)
    registry.replace((spec(ports=(9001,)),))
    rounds(checker, clock, 1)
    gone = writer.of(InstanceTransitionEvent)[-1]
    assert (gone.instance_id, gone.from_state, gone.to_state) == (2, "degraded", "unknown")
    assert [e.instance_id for e in checker.recent(1, 10)] == [1, 1]  # the removed one's results forgotten
    registry.replace(())
    rounds(checker, clock, 1)
    assert writer.of(ServiceTransitionEvent)[-1].to_state == "unknown"


def test_a_started_instance_is_recorded_healthy_from_when_its_starter_saw_it():
    clock = FakeClock(T0)
    writer = Collect()
    checker, _ = make(writer, clock, Fleet(clock))
    checker.mark_healthy(1)
    marked = clock.now()
    clock.advance(3)
    rounds(checker, clock, 1)
    first = writer.of(InstanceTransitionEvent)[0]
    assert (first.instance_id, first.to_state, first.at, first.status_code) == (1, "healthy", marked, None)


def test_recent_results_are_bounded_and_newest_first():
    clock = FakeClock(T0)
    checker, _ = make(Collect(), clock, Fleet(clock), recent=3)
    rounds(checker, clock, 5)
    latest = checker.recent(1, 1000)
    assert len(latest) == 6  # 3 per instance
    assert [c.at for c in latest] == sorted((c.at for c in latest), reverse=True)
    assert latest[0].at >= T0 + timedelta(seconds=20)
    assert {(c.instance_id, c.state.value, c.status_code) for c in latest} == {(1, "healthy", 200),
                                                                               (2, "degraded", 503)}
    assert len(checker.recent(1, 4)) == 4 and checker.recent(2, 10) == []


def test_an_empty_ring_and_minute_boundaries():
    ring = RecentChecks(2)
    assert ring.latest(1, 5) == []
    assert minute_of(datetime(2026, 1, 1, 10, 5, 59, 999, tzinfo=UTC)) == datetime(2026, 1, 1, 10, 5, tzinfo=UTC)


def test_through_the_real_writer_to_exact_uptime(sessions):
    """Rounds every 5 s for 3 minutes with instance 2 refused for the middle minute; then the figures."""
    with sessions.begin() as s:
        service = Service(name="orders", instances=[Instance(url="http://127.0.0.1:9001"),
                                                    Instance(url="http://127.0.0.1:9002")])
        s.add(service)
        s.flush()
        sid, iids = service.id, [i.id for i in service.instances]
    registry = Registry()
    registry.replace((ServiceSpec(id=sid, name="orders", health_path="/health", metrics_path=None, weight=1,
                                  managed=False, instances=tuple(InstanceSpec(i, sid, f"http://127.0.0.1:{p}")
                                                                 for i, p in zip(iids, (9001, 9002),
                                                                                 strict=True))),))
    clock = FakeClock(T0)
    writer = BatchWriter(sessions, clock)

    def handler(port: int) -> int:
        if port == 9002 and down:
            raise FetchError("ConnectError: refused")
        return 200

    checker, _ = make(writer, clock, handler, registry=registry)
    for k in range(36):
        down = 12 <= k < 24
        asyncio.run(checker.run_once())
        clock.advance(5)
    checker.close()  # 12:03:00
    writer.flush()
    with sessions() as s:
        minutes = s.scalars(select(InstanceCheckMinute).order_by(InstanceCheckMinute.minute,
                                                                 InstanceCheckMinute.instance_id)).all()
        changes = [(t.instance_id, t.to_state, t.at) for t in s.scalars(
            select(InstanceHealthTransition).order_by(InstanceHealthTransition.id))]
        each = history.instance_availability(s, sid, iids, T0, T0 + timedelta(minutes=3))
        overall = history.service_availability(s, sid, T0, T0 + timedelta(minutes=3))
    assert [(m.instance_id, m.checks, m.up, m.down) for m in minutes] == [
        (iids[0], 12, 12, 0), (iids[1], 12, 12, 0), (iids[0], 12, 12, 0), (iids[1], 12, 0, 12),
        (iids[0], 12, 12, 0), (iids[1], 12, 12, 0)]
    # fall = rise = 2: down at the second refused check (12:01:05), up at the second good one (12:02:05)
    assert changes[2:4] == [(iids[1], "unhealthy", T0 + timedelta(seconds=65)),
                            (iids[1], "healthy", T0 + timedelta(seconds=125))]
    assert each[iids[1]].down_s == 60.0 and each[iids[1]].uptime_percent == pytest.approx(120 * 100 / 180, abs=1e-4)
    assert overall.uptime_percent == 100.0 and overall.observed_s == 180.0  # one instance served throughout
