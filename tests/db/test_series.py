"""Bucketed series: the step ladder, raw and rollup paths agreeing, the point bound."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from db.models import MetricRow
from db.series import STEPS, metric_series, pick_step

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("span", "min_step", "step"), [
    (timedelta(minutes=5), 1, 1), (timedelta(minutes=5), 5, 5), (timedelta(hours=1), 1, 2),
    (timedelta(hours=24), 5, 60), (timedelta(days=7), 5, 600), (timedelta(days=400), 5, 21600),
    (timedelta(days=9000), 5, 86400),
], ids=["5min", "5min-5s-buckets", "1h", "24h", "7d", "400d", "beyond-the-ladder"])
def test_pick_step_is_the_smallest_that_keeps_2000_points(span, min_step, step):
    assert pick_step(T0, T0 + span, 2000, min_step) == step
    if step != STEPS[-1]:
        assert span.total_seconds() / step <= 2000


def seed(sessions, minutes: int = 10) -> None:
    """Two services, a row every 5 s; orders' latency rises each minute, payments measured nothing."""
    with sessions.begin() as s:
        for k in range(minutes * 12):
            at = T0 + timedelta(seconds=5 * k)
            minute = k // 12
            s.add(MetricRow(service_name="orders", timestamp=at, bucket_seconds=5, request_count=10 + minute,
                            error_count=1 if k % 6 == 0 else 0, latency_avg_ms=20.0 + minute,
                            latency_p50_ms=15.0 + minute, latency_p95_ms=40.0 + k % 12, latency_p99_ms=90.0 + k % 12,
                            cpu_percent=10.0 * (k % 2), memory_mb=100.0, instances_scraped=2))
            s.add(MetricRow(service_name="payments", timestamp=at, bucket_seconds=5, request_count=0, error_count=0,
                            latency_avg_ms=None, latency_p50_ms=None, latency_p95_ms=None, latency_p99_ms=None,
                            cpu_percent=None, memory_mb=None, instances_scraped=0))


def test_minute_buckets_from_the_rollup_equal_the_raw_rows(sessions):
    seed(sessions)
    with sessions() as s:
        rollup = metric_series(s, ["orders", "payments"], T0, T0 + timedelta(minutes=10), max_points=10)
        raw = metric_series(s, ["orders", "payments"], T0, T0 + timedelta(minutes=10), max_points=200, min_step=30)
    assert set(rollup["step_s"]) == {60} and set(raw["step_s"]) == {30}
    orders = rollup[rollup.service == "orders"].reset_index(drop=True)
    assert len(orders) == 10
    first = orders.iloc[0]
    assert first.requests == 120 and first.errors == 2 and first.rps == pytest.approx(2.0)
    assert first.error_rate == pytest.approx(100 * 2 / 120)
    assert first.latency_avg_ms == pytest.approx(20.0) and first.latency_p50_ms == pytest.approx(15.0)
    assert (first.latency_p95_ms, first.latency_p99_ms) == (51.0, 101.0)  # the worst bucket of the minute
    assert first.cpu_percent == pytest.approx(5.0) and first.memory_mb == pytest.approx(100.0)
    assert list(orders.latency_avg_ms) == pytest.approx([20.0 + m for m in range(10)])
    # the raw path over 30 s buckets adds up to the same minute
    raw_orders = raw[raw.service == "orders"]
    assert raw_orders.requests.sum() == orders.requests.sum()
    assert raw_orders.iloc[:2].requests.sum() == first.requests
    payments = rollup[rollup.service == "payments"]
    assert (payments.requests == 0).all() and payments.latency_avg_ms.isna().all()
    assert payments.error_rate.isna().all() and payments.cpu_percent.isna().all()  # unknown, not 0


def test_a_week_is_at_most_2000_points_per_service(sessions):
    seed(sessions, minutes=3)
    with sessions() as s:
        frame = metric_series(s, ["orders"], T0 - timedelta(days=7) + timedelta(minutes=3), T0 + timedelta(minutes=3))
    assert frame.step_s.iloc[0] == 600 and len(frame) == 1 and frame.requests.iloc[0] == 12 * (10 + 11 + 12)


def test_no_services_is_an_empty_frame(sessions):
    with sessions() as s:
        frame = metric_series(s, [], T0, T0 + timedelta(hours=1))
    assert frame.empty and "rps" in frame.columns


def test_buckets_outside_the_range_are_not_returned(sessions):
    seed(sessions, minutes=2)
    with sessions() as s:
        frame = metric_series(s, ["orders"], T0 + timedelta(seconds=30), T0 + timedelta(seconds=60), min_step=5)
    assert list(frame.requests) == [10] * 6
    assert not any(math.isnan(v) for v in frame.latency_avg_ms)


def test_requests_per_second_is_over_the_time_the_rows_cover_not_the_step(sessions):
    # 6 requests every 1.2 s is 5 req/s; 2 s buckets hold one row or two, which over the step would be 3 or 6
    with sessions.begin() as s:
        for k in range(50):
            s.add(MetricRow(service_name="orders", timestamp=T0 + timedelta(seconds=1.2 * k), bucket_seconds=1.2,
                            request_count=6, error_count=0, instances_scraped=0))
    with sessions() as s:
        frame = metric_series(s, ["orders"], T0, T0 + timedelta(seconds=60), min_step=2)
    assert frame.step_s.iloc[0] == 2 and set(frame.requests) == {6, 12}
    assert list(frame.rps) == pytest.approx([5.0] * len(frame))
