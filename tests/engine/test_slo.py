"""SLO counters on a fake clock and a real PostgreSQL: burn rates over windows of the live ring, the SLIs and error
budget over days from slo_minutes plus the open minute, and the recorder's listener."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from db.alerting_models import SloMinuteRow
from db.models import Service
from engine.alerting.slo import SloBook, SloTarget, budget_remaining, burn
from engine.clock import FakeClock
from engine.store.writer import BatchWriter
from engine.traffic.recorder import TrafficRecorder

ORDERS = SloTarget("orders", 99.0, 200.0, 95.0, 30)


@pytest.fixture
def book(writer, clock, sessions):
    book = SloBook(writer, clock, sessions)
    book.set(ORDERS)
    return book


def send(book: SloBook, requests: int, errors: int = 0, slow: int = 0, service: str = "orders") -> None:
    """Count requests now: the first `errors` failed, the next `slow` took 500 ms, the rest 10 ms."""
    for n in range(requests):
        book.record(service, 500.0 if errors <= n < errors + slow else 10.0, n >= errors)


def test_burn_is_the_failed_fraction_over_the_allowed_one():
    assert burn(1000, 10, 99.0) == pytest.approx(1.0, rel=1e-12)
    assert burn(1000, 144, 99.0) == pytest.approx(14.4, rel=1e-12)
    assert burn(200, 0, 99.9) == 0.0
    assert burn(0, 0, 99.0) is None
    assert budget_remaining(1000, 5, 99.0) == pytest.approx(0.5, rel=1e-12)
    assert budget_remaining(1000, 30, 99.0) == pytest.approx(-2.0, rel=1e-12)  # overspent: below zero
    assert budget_remaining(0, 0, 99.0) is None


def test_burn_rates_are_exact_for_given_counts_per_window(book, clock):
    send(book, 1000, errors=60)  # 40 min ago (after the advances below)
    clock.advance(40 * 60)
    send(book, 500, errors=5)
    clock.advance(3 * 60)
    send(book, 500, errors=0)
    # 5 min: the last 1000 requests, 5 failed; 30 min: the same; 1 h: all 2000, 65 failed
    assert book.burn_rate("orders", 300) == pytest.approx((5 / 1000) / 0.01, rel=1e-12)
    assert book.burn_rate("orders", 1800) == pytest.approx((5 / 1000) / 0.01, rel=1e-12)
    assert book.burn_rate("orders", 3600) == pytest.approx((65 / 2000) / 0.01, rel=1e-12)
    assert book.burn_rate("orders", 6 * 3600) == pytest.approx((65 / 2000) / 0.01, rel=1e-12)
    # a window is whole 10 s slots ending with the current one: 60 s ago is outside a 60 s window
    clock.advance(60)
    assert book.burn_rate("orders", 60) is None  # nothing routed in it
    assert book.burn_rate("orders", 70) == pytest.approx(0.0)


def test_short_windows_for_tests_and_a_twelfth_of_the_long_one(book, clock):
    send(book, 100, errors=0)
    clock.advance(55)
    send(book, 10, errors=5)
    assert book.burn_rate("orders", 5) == pytest.approx(50.0, rel=1e-12)  # 60 / 12: the current slot only
    assert book.burn_rate("orders", 60) == pytest.approx((5 / 110) / 0.01, rel=1e-12)


def test_the_ring_forgets_what_is_older_than_its_span(book, clock):
    send(book, 10, errors=10)
    clock.advance(6 * 3600)
    assert book.burn_rate("orders", 6 * 3600) is None
    assert book.burn_rate("orders", 6 * 3600 + 10) == pytest.approx(100.0, rel=1e-12)
    clock.advance(18 * 3600)
    assert book.burn_rate("orders", 24 * 3600) is None
    assert book.burn_rate("orders", 48 * 3600) is None  # a longer window is the whole ring
    send(book, 10, errors=1)
    assert book.burn_rate("orders", 48 * 3600) == pytest.approx(10.0, rel=1e-12)


def test_services_without_an_slo_are_not_counted(book, clock, writer, sessions):
    send(book, 50, errors=50, service="payments")
    assert book.burn_rate("payments", 300) is None
    clock.advance(120)
    book.close_minutes()
    writer.flush()
    with sessions() as s:
        assert s.scalars(select(SloMinuteRow)).all() == []


def test_closed_minutes_are_written_and_the_report_adds_the_open_one(book, clock, writer, sessions):
    with sessions.begin() as s:
        s.add(Service(name="orders"))
    send(book, 100, errors=2, slow=3)  # minute 0
    clock.advance(60)
    send(book, 100, errors=1, slow=5)  # minute 1 closes minute 0 (queued for the writer)
    clock.advance(30)
    with sessions() as s:
        out = book.report(s, ORDERS)
        rows = s.execute(select(SloMinuteRow.minute, SloMinuteRow.requests, SloMinuteRow.errors,
                                SloMinuteRow.slow)).all()
    start = FakeClock().now()
    assert [tuple(r) for r in rows] == [(start, 100, 2, 3)]  # minute 1 is still open: in memory only
    assert out.requests == 200
    assert out.availability == pytest.approx(100 * 197 / 200, rel=1e-12)
    assert out.latency == pytest.approx(100 * 192 / 200, rel=1e-12)
    assert out.errorBudgetRemaining == pytest.approx(1 - (3 / 200) / 0.01, rel=1e-12)
    assert out.burnRates["5m"] == pytest.approx((3 / 200) / 0.01, rel=1e-12)
    assert out.burnRates.keys() == {"5m", "30m", "1h", "6h"}
    # the job closes a minute with no traffic after it; a minute written again (after a restart) adds up
    clock.advance(60)
    book.close_minutes()
    writer.flush()
    with sessions() as s:
        assert s.scalar(select(SloMinuteRow.requests).where(SloMinuteRow.minute == start + timedelta(minutes=1))) \
            == 100


def test_the_window_of_days_comes_from_the_database_after_a_restart(sessions, clock):
    writer = BatchWriter(sessions, clock)
    before = SloBook(writer, clock, sessions)
    short = SloTarget("orders", 99.5, None, None, 1)
    before.set(short)
    send(before, 400, errors=4)
    clock.advance(30)
    send(before, 100, errors=0)
    before.close_all()  # at stop: the open minute too
    writer.flush()

    after = SloBook(BatchWriter(sessions, clock), clock, sessions)
    after.set(short)
    clock.advance(10)
    send(after, 100, errors=1)  # the same minute: its row is added to
    with sessions() as s:
        out = after.report(s, short)
    assert (out.requests, out.latency, out.latencyThresholdMs) == (600, None, None)
    assert out.availability == pytest.approx(100 * 595 / 600, rel=1e-12)
    assert out.errorBudgetRemaining == pytest.approx(1 - (5 / 600) / 0.005, rel=1e-12)
    assert out.burnRates["5m"] == pytest.approx((1 / 100) / 0.005, rel=1e-12)  # live counters: since this start
    clock.advance(86_400 + 120)  # the day is over: the minutes left the window
    with sessions() as s:
        out = after.report(s, short)
    assert (out.requests, out.availability, out.errorBudgetRemaining) == (0, None, None)
    assert out.burnRates == {"5m": None, "30m": None, "1h": None, "6h": None}


def test_a_new_latency_threshold_counts_from_then_on(book, clock, sessions):
    send(book, 10, slow=10)
    book.set(SloTarget("orders", 99.0, 1000.0, 95.0, 30))
    send(book, 10, slow=10)  # 500 ms is within 1000 ms
    with sessions() as s:
        out = book.report(s, book.target("orders"))
    assert (out.requests, out.latency, out.latencyThresholdMs) == (20, 50.0, 1000.0)


def test_replace_drops_services_without_an_slo_and_writes_their_open_minute(book, clock, writer, sessions):
    send(book, 7, errors=1)
    book.replace([SloTarget("payments", 99.0, None, None, 7)])
    assert book.target("orders") is None and book.burn_rate("orders", 300) is None
    writer.flush()
    with sessions() as s:
        assert s.execute(select(SloMinuteRow.service_name, SloMinuteRow.requests)).all() == [("orders", 7)]


def test_the_traffic_recorder_tells_its_listener(book, clock):
    recorder = TrafficRecorder(listeners=(book.record,))
    for ok in (True, True, False, True):
        recorder.begin("orders")
        recorder.record("orders", 12.0, ok)
    assert recorder.drain("orders").requests == 4
    assert book.burn_rate("orders", 60) == pytest.approx((1 / 4) / 0.01, rel=1e-12)


def test_old_minutes_are_trimmed(book, clock, writer, sessions):
    send(book, 5)
    book.close_all()
    writer.flush()
    clock.advance(92 * 86_400)
    assert book.trim_scheduled() == 1
    with sessions() as s:
        assert s.scalars(select(SloMinuteRow)).all() == []
