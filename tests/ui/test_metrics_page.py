"""The Metrics page under AppTest on a seeded PostgreSQL: metric rows written through the ORM (the trigger keeps the
rollup), breaker transitions, simulations, scaling decisions and a load test; the charts, their events, the CSV,
the bucket per range and an unreachable database."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from contract.roles import Role
from db import partitions
from db.annotations import BREAKER_COLUMNS, LOAD_TEST_COLUMNS, SCALING_COLUMNS, Annotations, read_annotations
from db.models import BreakerTransitionRow, LoadTest, MetricRow, ScalingEvent, Service, Simulation
from db.series import COLUMNS, metric_series
from tests.conftest import free_port
from tests.ui.conftest import chart_spec, open_page, texts
from ui import metric_charts, metrics

PAGE = "pages/metrics.py"
DAY = timedelta(days=1)
OUTAGE = (3 * 288, 3 * 288 + 24)  # orders has no row for 2 hours from 3 days after the first
CHART_KEYS = ("mx-rps", "mx-error_rate", "mx-latency", "mx-cpu_percent", "mx-memory_mb")
Y_TITLES = {"mx-rps": "req/s", "mx-error_rate": "error rate (%)", "mx-latency": "latency (ms)",
            "mx-cpu_percent": "CPU (% of one core)", "mx-memory_mb": "memory (MB)"}


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """st.cache_data lives in this process across AppTest runs: each test starts without cached reads."""
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def row(service: str, at: datetime, requests: int, errors: int, p95: float, *, cpu: float | None,
        bucket_s: float = 5.0) -> dict[str, Any]:
    """One metrics row as the collector writes it (p50 10 ms, p99 50 ms, 128 MB)."""
    return {"service_name": service, "timestamp": at, "bucket_seconds": bucket_s, "request_count": requests,
            "error_count": errors, "latency_avg_ms": 12.0, "latency_p50_ms": 10.0, "latency_p95_ms": p95,
            "latency_p99_ms": 50.0, "cpu_percent": cpu, "memory_mb": 128.0, "instances_scraped": 1}


@pytest.fixture
def seeded(dash_env: sessionmaker[Session]) -> dict[str, Any]:
    """orders (healthy) and payments (degraded) registered, legacy only in the metrics. A row every 300 s from 7
    days and 10 minutes ago to 10 minutes ago: orders 60 requests with 6 errors, p95 20 or 30 ms alternately, CPU
    25 %, with no row for 2 hours 3 days in (an outage); payments 30 requests, no error, no CPU scraped. The last
    10 minutes hold a row of orders every 5 s (at :01, :06, ...) instead. Events:
    orders' breaker opening, half-opening and closing 2 days ago, payments' opening 8 days ago (out of every range),
    a failure simulation on orders and a latency one on every service, a failed one (never drawn), payments
    scaled up 1 day ago (and a "no change" period), orders scaled down 4.5 days ago, a load test on orders 4 days
    ago."""
    now = datetime.now(UTC)
    base = datetime.fromtimestamp(now.timestamp() // 600 * 600, UTC) - 7 * DAY
    dense = datetime.fromtimestamp(now.timestamp() // 5 * 5, UTC) + timedelta(seconds=1)
    with dash_env.begin() as s:
        day = (base - DAY).date()
        while day <= (now + DAY).date():
            partitions.create_day(s, day)
            day += DAY
        s.add_all([Service(name="orders", status="healthy"), Service(name="payments", status="degraded")])
        rows = []
        for k in range(-2, 7 * 288 + 2):
            at = base + timedelta(seconds=300 * k)
            if at >= dense - timedelta(seconds=600):  # the last 10 minutes hold only 5-second rows
                break
            if not OUTAGE[0] <= k < OUTAGE[1]:
                rows.append(row("orders", at, 60, 6, 20.0 + 10.0 * (k % 2), cpu=25.0, bucket_s=300))
            rows.append(row("payments", at, 30, 0, 40.0, cpu=None, bucket_s=300))
        for j in range(120):
            rows.append(row("orders", dense - timedelta(seconds=5 * j), 10 + j % 7, j % 2, 25.0, cpu=30.0))
        rows.append(row("legacy", base + DAY, 5, 0, 5.0, cpu=1.0))
        s.execute(insert(MetricRow), rows)
        s.add_all([
            BreakerTransitionRow(service_name="orders", from_state="CLOSED", to_state="OPEN",
                                 reason="5 consecutive failures", at=now - 2 * DAY),
            BreakerTransitionRow(service_name="orders", from_state="OPEN", to_state="HALF_OPEN",
                                 reason="open timeout elapsed", at=now - 2 * DAY + timedelta(seconds=60)),
            BreakerTransitionRow(service_name="orders", from_state="HALF_OPEN", to_state="CLOSED",
                                 reason="trial call succeeded", at=now - 2 * DAY + timedelta(seconds=61)),
            BreakerTransitionRow(service_name="payments", from_state="CLOSED", to_state="OPEN",
                                 reason="long ago", at=now - 8 * DAY),
        ])
        s.flush()
        for kind, target, status, started, params in (
            ("service-failure", "orders", "completed", now - 3.5 * DAY, {"statusCode": 503, "probability": 0.5}),
            ("network-latency", None, "stopped", now - 3 * DAY, {"latency": 200}),
            ("memory-leak", None, "failed", now - 3 * DAY, {"rate": 1.0}),
        ):
            s.add(Simulation(kind=kind, target=target, params={"duration": 600_000, **params}, status=status,
                             started_at=started, ends_at=started + timedelta(minutes=10),
                             ended_at=started + timedelta(minutes=10)))
            s.flush()
        s.add_all([
            ScalingEvent(service_name="payments", direction="up", from_count=1, to_count=2, source="autoscaler",
                         reason="cpu 90 % above the target 60 %", timestamp=now - DAY),
            ScalingEvent(service_name="payments", direction="none", from_count=2, to_count=2, source="autoscaler",
                         reason="within tolerance", timestamp=now - DAY + timedelta(seconds=30)),
            ScalingEvent(service_name="orders", direction="down", from_count=3, to_count=2, source="manual",
                         reason="scale-down from the dashboard", timestamp=now - 4.5 * DAY),
            LoadTest(status="completed", concurrent_users=10, requests_per_second=50.0, duration_s=60.0,
                     target_service="orders", path="/work", method="GET", workers=1, total_requests=3000,
                     successful_requests=3000, failed_requests=0, dropped_requests=0, started_at=now - 4 * DAY,
                     ended_at=now - 4 * DAY + timedelta(seconds=60)),
        ])
    return {"now": now, "base": base}


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """File name -> the callable a deferred download button would run on a click."""
    kept: dict[str, Any] = {}
    original = MediaFileManager.add_deferred

    def keep(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        kept[file_name] = data_callable
        return original(self, data_callable, mimetype, coordinates, file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", keep)
    return kept


def choose_range(at: AppTest, label: str) -> AppTest:
    at.segmented_control(key="mx-range").set_value(label).run()
    assert not at.exception and not at.error
    return at


def decode(values: Any) -> list[Any]:
    """A trace array as a list (plotly writes numpy arrays as base64 typed arrays)."""
    if isinstance(values, dict):
        return list(np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist())
    return list(values)


def lines(at: AppTest, key: str) -> dict[str, dict[str, Any]]:
    """The data traces of a chart: name -> {start: first bucket (naive UTC), dx_s, y: [...]}, events left out."""
    out = {}
    for trace in chart_spec(at, key)["data"]:
        if trace.get("yaxis") == "y2":
            continue
        out[trace["name"]] = {"start": pd.Timestamp(trace["x0"]), "dx_s": trace["dx"] / 1000.0,
                              "y": decode(trace["y"])}
    return out


def events_of(at: AppTest, key: str) -> dict[str, list[str]]:
    """The event traces of a chart: name -> hover texts of its markers."""
    return {t["name"]: list(t.get("hovertext") or []) for t in chart_spec(at, key)["data"]
            if t.get("yaxis") == "y2" and t["name"] != "window" and not t["name"].endswith("(lines)")}


def labels(at: AppTest, key: str) -> list[str]:
    return [a["text"] for a in chart_spec(at, key)["layout"].get("annotations", [])]


def caption_with(at: AppTest, start: str) -> str:
    return next(c for c in texts(at.caption) if c.startswith(start))


def points(trace: dict[str, Any]) -> int:
    return max(len(decode(trace[axis])) for axis in ("x", "y") if axis in trace)


def close(values: list[float], expected: float) -> bool:
    return bool(np.allclose(values, expected, rtol=1e-6))


# -- seven days: 10-minute buckets, every chart, every kind of event ----------------------------------------------


def test_seven_days_chart_every_quantity_in_ten_minute_buckets_with_units(seeded):
    at = choose_range(open_page(PAGE), "7 d")
    assert at.multiselect(key="mx-services").value == ["legacy", "orders", "payments"]  # all, by name
    caption = caption_with(at, "**Bucket")
    assert caption.startswith("**Bucket 10 min** (600 s) · 1,008 buckets per service · 3 service(s) · ")
    for key in CHART_KEYS:
        layout = chart_spec(at, key)["layout"]
        assert layout["xaxis"]["title"]["text"] == "time (UTC)" and layout["xaxis"]["type"] == "date"
        assert layout["yaxis"]["title"]["text"] == Y_TITLES[key]
        for trace in chart_spec(at, key)["data"]:
            assert points(trace) <= 2000, (key, trace["name"])
    rps = lines(at, "mx-rps")
    assert set(rps) == {"orders", "payments", "legacy"}
    orders, payments = rps["orders"]["y"], rps["payments"]["y"]
    assert rps["orders"]["dx_s"] == 600 and 1006 <= len(orders) <= 1009
    outage = np.flatnonzero(np.isnan(orders)).tolist()
    assert len(outage) == 12 and outage == list(range(outage[0], outage[0] + 12))  # 2 hours: a gap, not zeros

    def known(key: str, name: str) -> list[float]:
        """The first 1,000 buckets' values (the last ones also hold the 5-second rows), the gap left out."""
        return [v for v in lines(at, key)[name]["y"][:1000] if not np.isnan(v)]

    # two rows of 60 requests a bucket
    assert close(known("mx-rps", "orders"), 120 / 600) and close(payments[:1000], 60 / 600)
    legacy = [v for v in rps["legacy"]["y"] if not np.isnan(v)]
    assert close(legacy, 5 / 600)  # one row in a week: a single point, every other bucket a gap
    assert close(known("mx-error_rate", "orders"), 10.0) and close(known("mx-error_rate", "payments"), 0.0)
    assert set(lines(at, "mx-latency")) == {"orders p95", "payments p95", "legacy p95"}  # p95 alone by default
    at.pills(key="mx-percentiles").set_value(["p50", "p95", "p99"]).run()
    latency = lines(at, "mx-latency")
    assert set(latency) == {f"{s} {p}" for s in ("orders", "payments", "legacy") for p in ("p50", "p95", "p99")}
    assert all(points(t) <= 2000 for t in chart_spec(at, "mx-latency")["data"])
    assert close(known("mx-latency", "orders p95"), 30.0)  # the worst of 20 and 30 ms, not their mean
    assert close(known("mx-latency", "orders p50"), 10.0) and close(known("mx-latency", "payments p99"), 50.0)
    cpu = lines(at, "mx-cpu_percent")
    assert set(cpu) == {"orders", "legacy"}  # payments is not scraped: no line rather than a line of zeros
    assert close(known("mx-cpu_percent", "orders"), 25.0)
    assert close(known("mx-memory_mb", "payments"), 128.0)
    assert any("p95 and p99 are the worst collection bucket's" in c for c in texts(at.caption))


def test_every_kind_of_event_is_on_every_chart(seeded):
    at = choose_range(open_page(PAGE), "7 d")
    for key in CHART_KEYS:
        marks = events_of(at, key)
        assert set(marks) == {"breaker → OPEN", "breaker → HALF_OPEN", "breaker → CLOSED", "scale-up", "scale-down",
                              "failure simulation", "load test"}, key
        assert marks["breaker → OPEN"][0].startswith("<b>orders breaker CLOSED → OPEN</b>")
        assert marks["breaker → OPEN"][0].endswith("5 consecutive failures")  # payments' is 8 days old
        assert marks["scale-up"] == [marks["scale-up"][0]]  # the "no change" period is not an event
        assert "payments scaled up: 1 → 2</b> (autoscaler)" in marks["scale-up"][0]
        assert "orders scaled down: 3 → 2</b> (manual)" in marks["scale-down"][0]
        assert [m.split("</b>")[0] for m in marks["failure simulation"]] == ["<b>#1 failure · orders",
                                                                            "<b>#2 latency · all"]
        assert marks["load test"][0].startswith("<b>load test #1 · orders · 50 req/s</b><br>10 users, 60 s")
        assert {"#1 failure · orders", "#2 latency · all", "load test #1 · orders · 50 req/s"} <= set(labels(at, key))
        shapes = chart_spec(at, key)["layout"]["shapes"]
        assert sorted(s["name"] for s in shapes) == ["load test 1", "simulation 1", "simulation 2"]
    colours = {t["name"]: t["marker"]["color"] for t in chart_spec(at, "mx-rps")["data"]
               if t["name"].startswith("breaker") and t["mode"] == "markers"}
    assert colours == {"breaker → CLOSED": "#21c354", "breaker → HALF_OPEN": "#ffa421", "breaker → OPEN": "#ff4b4b"}
    table = next(d.value for d in at.dataframe if "event" in d.value.columns)
    assert table["kind"].tolist() == ["scaling", "load test", "simulation", "simulation", "breaker", "breaker",
                                      "breaker", "scaling"]
    assert table["event"].iloc[0] == "scaled down 3 → 2 (manual): scale-down from the dashboard"


def test_events_and_lines_follow_the_chosen_services_and_kinds(seeded):
    at = choose_range(open_page(PAGE), "7 d")
    at.multiselect(key="mx-services").set_value(["payments"]).run()
    assert not at.exception
    assert set(lines(at, "mx-rps")) == {"payments"}
    assert set(events_of(at, "mx-rps")) == {"scale-up", "failure simulation"}  # orders' events are gone
    assert [m.split("</b>")[0] for m in events_of(at, "mx-rps")["failure simulation"]] == ["<b>#2 latency · all"]
    at.pills(key="mx-events").set_value(["scaling"]).run()
    assert set(events_of(at, "mx-latency")) == {"scale-up"} and not labels(at, "mx-latency")
    at.pills(key="mx-percentiles").set_value(["p99"]).run()
    assert set(lines(at, "mx-latency")) == {"payments p99"}
    at.multiselect(key="mx-services").set_value([]).run()
    assert "Choose at least one service." in texts(at.info) and not at.get("plotly_chart")


def test_the_csv_is_exactly_the_charted_frame(seeded, downloads, dash_env):
    at = choose_range(open_page(PAGE), "7 d")
    name, make = list(downloads.items())[-1]  # this run's button (the first run's 1-hour one came before)
    csv = pd.read_csv(io.BytesIO(make()))
    assert list(csv.columns) == COLUMNS
    assert (csv["step_s"] == 600).all() and csv["bucket"].str.endswith("+00:00").all()
    # the file is named after the window: read that window again and compare value for value
    start, end = (datetime.strptime(t, "%Y%m%dT%H%MZ").replace(tzinfo=UTC) for t in name[8:-4].split("-"))
    assert end - start == 7 * DAY
    with dash_env() as s:
        frame = metric_series(s, ["legacy", "orders", "payments"], start, end, min_step=5.0)
    expected = frame.assign(bucket=[t.isoformat() for t in frame["bucket"]])
    pd.testing.assert_frame_equal(csv, expected, check_dtype=False)
    # and the charts show the same numbers at the same buckets
    traces = lines(at, "mx-rps")
    for service, group in csv.groupby("service"):
        trace = traces[str(service)]
        place = ((pd.to_datetime(group["bucket"]).dt.tz_convert(None) - trace["start"]) // pd.Timedelta(seconds=600))
        assert np.allclose(np.asarray(trace["y"])[place.to_numpy()], group["rps"], rtol=1e-6)
    assert sum(not np.isnan(v) for t in traces.values() for v in t["y"]) == len(csv)


# -- the bucket follows the range ---------------------------------------------------------------------------------


def test_five_minutes_read_five_second_buckets_of_the_raw_rows(seeded):
    at = choose_range(open_page(PAGE), "5 min")
    assert caption_with(at, "**Bucket").startswith("**Bucket 5 s** (5 s) · 60 buckets per service · 3 service(s)")
    rps = lines(at, "mx-rps")
    assert set(rps) == {"orders"}  # only orders has rows in the last 10 minutes
    orders = rps["orders"]
    assert orders["dx_s"] == 5 and len(orders["y"]) <= 61
    seen = [v for v in orders["y"] if not np.isnan(v)]
    assert len(seen) >= 55
    assert all(10 / 5 - 1e-6 <= v <= 16 / 5 + 1e-6 for v in seen)  # 10 to 16 requests in 5 s
    assert not events_of(at, "mx-rps")  # nothing happened in the last 5 minutes


@pytest.mark.parametrize(("label", "collect_s", "step"), [
    ("5 min", 5.0, 5), ("5 min", 1.0, 1), ("5 min", 10.0, 10), ("15 min", 5.0, 5), ("1 h", 1.0, 2), ("1 h", 5.0, 5),
    ("6 h", 5.0, 15), ("24 h", 5.0, 60), ("7 d", 5.0, 600), ("7 d", 900.0, 900),
], ids=str)
def test_preset_windows_end_on_the_last_complete_bucket(label, collect_s, step):
    now = datetime(2026, 3, 1, 12, 34, 56, 789000, tzinfo=UTC)
    w = metrics.preset_window(metrics.RANGES[label], now, collect_s)
    assert w.step == step
    assert w.end - w.start == metrics.RANGES[label] and w.end.timestamp() % step == 0
    assert now - metrics.SETTLE - timedelta(seconds=step) < w.end <= now - metrics.SETTLE
    assert w.buckets <= 2000


def test_a_custom_window_is_widened_to_whole_buckets():
    w = metrics.custom_window(datetime(2026, 3, 1, 0, 3, 7, tzinfo=UTC), datetime(2026, 3, 3, 0, 0, 1, tzinfo=UTC), 5)
    assert (w.start, w.end, w.step) == (datetime(2026, 3, 1, 0, 2, tzinfo=UTC), datetime(2026, 3, 3, 0, 2, tzinfo=UTC),
                                        120)
    # 2000 two-minute buckets exactly; the unaligned start pushes it to 2001, so the next step on the ladder
    w = metrics.custom_window(datetime(2026, 3, 1, 0, 1, tzinfo=UTC), datetime(2026, 3, 3, 18, 41, tzinfo=UTC), 5)
    assert w.step == 300 and w.buckets <= 2000


def test_a_custom_range_shows_its_buckets_and_its_gaps(seeded):
    at = choose_range(open_page(PAGE), "Custom")
    base = seeded["base"].replace(tzinfo=None)
    at.datetime_input(key="mx-from").set_value(base + 2 * DAY)
    at.datetime_input(key="mx-to").set_value(base + 4 * DAY).run()
    assert not at.exception and not at.error
    # 2 days would be 2-minute buckets, but the rows are 5 minutes apart: a 2-minute line would be loose points
    assert caption_with(at, "**Bucket").startswith(
        "**Bucket 5 min** (300 s) (widened: the rows are 300 s apart, more than the 5 s collection interval) · "
        "576 buckets per service")
    orders = lines(at, "mx-rps")["orders"]
    assert orders["start"] == pd.Timestamp(base + 2 * DAY) and orders["dx_s"] == 300
    y = np.asarray(orders["y"])
    gap = np.flatnonzero(np.isnan(y)).tolist()
    assert gap == list(range(288, 288 + 24))  # the outage: a gap, not zeros and not a line across
    assert close(y[~np.isnan(y)].tolist(), 60 / 300) and len(y) == 576
    assert set(events_of(at, "mx-rps")) == {"scale-down", "load test", "failure simulation"}
    at.datetime_input(key="mx-to").set_value(base + DAY).run()
    assert "Choose a start, and an end after it." in texts(at.error) and not at.get("plotly_chart")


def test_buckets_are_never_finer_than_the_rows(dash_env):
    now = datetime.now(UTC)
    with dash_env.begin() as s:
        for day in {(now - DAY).date(), now.date(), (now + DAY).date()}:
            partitions.create_day(s, day)
        s.add(Service(name="orders", status="healthy"))
        s.execute(insert(MetricRow), [row("orders", now - timedelta(seconds=60 * k + 30), 120, 0, 9.0, cpu=5.0,
                                          bucket_s=60) for k in range(1, 60)])
    at = open_page(PAGE)  # an hour: 5-second buckets for rows a minute apart would leave 11 empty in 12
    assert not at.exception and not at.error
    assert caption_with(at, "**Bucket").startswith("**Bucket 1 min** (60 s) (widened: the rows are 60 s apart")
    y = lines(at, "mx-rps")["orders"]["y"]
    assert close([v for v in y if not np.isnan(v)], 2.0) and sum(not np.isnan(v) for v in y) >= 57


# -- out of reach, empty, logged out -------------------------------------------------------------------------------


def test_an_unreachable_database_is_said_plainly_and_the_page_recovers(seeded, monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    at = open_page(PAGE)
    assert not at.exception
    [error] = texts(at.error)
    assert error.startswith("The database is not reachable (") and error.endswith("This page tries again every 5 s.")
    assert "Traceback" not in error and not at.get("plotly_chart") and not at.multiselect
    monkeypatch.setenv("DATABASE_URL", database_url)
    at.run()  # what the retry does once the database answers
    assert not at.exception and not at.error
    assert set(lines(at, "mx-rps")) == {"orders", "payments"}  # the last hour: legacy's one row is older


def test_the_database_going_away_under_the_charts_is_said_too(seeded, monkeypatch):
    at = choose_range(open_page(PAGE), "6 h")
    st.cache_data.clear()

    def gone(*args: Any) -> None:
        raise OperationalError("SELECT …", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(metrics, "read_annotations", gone)
    at.run()
    assert not at.exception
    assert any(e.startswith("The database is not reachable (server closed the connection unexpectedly)")
               for e in texts(at.error))


def test_no_service_yet(dash_env):
    at = open_page(PAGE)
    assert not at.exception and not at.get("plotly_chart")
    assert texts(at.info) == ["No service yet: register one on the Services page; its metrics appear here once they "
                              "are collected."]


def test_no_metrics_in_the_range_is_said(dash_env):
    with dash_env.begin() as s:
        s.add(Service(name="orders", status="unhealthy"))
    at = open_page(PAGE)
    assert not at.exception and not at.get("plotly_chart")
    assert any(i.startswith("No metrics for the chosen services from ") for i in texts(at.info))
    assert at.get("download_button")[0].proto.disabled


def test_the_page_needs_a_login(dash_env):
    at = open_page(PAGE, role=None)
    assert not at.exception and texts(at.title) == ["Microservice Monitor"] and not at.get("plotly_chart")


def test_a_viewer_sees_the_services_with_their_health(seeded):
    at = open_page(PAGE, role=Role.VIEWER)
    picker = at.multiselect(key="mx-services")
    assert picker.options == ["legacy (not registered)", "🟢 orders", "🟠 payments"]


# -- the reads and builders on their own --------------------------------------------------------------------------


def test_read_annotations_keeps_the_newest_within_the_limit(seeded, dash_env):
    now = seeded["now"]
    with dash_env() as s:
        events = read_annotations(s, now - 7 * DAY, now, ["orders"], limit=2)
        everything = read_annotations(s, now - 9 * DAY, now, ["orders", "payments"])
    assert events.breakers["reason"].tolist() == ["open timeout elapsed", "trial call succeeded"]
    assert events.truncated == frozenset({"breakers", "simulations"})
    assert [r.id for r in events.simulations] == [2, 3]  # the newest 2; #3 failed, left to the charts to skip
    assert everything.breakers["service_name"].tolist() == ["payments", "orders", "orders", "orders"]
    assert everything.scaling["direction"].tolist() == ["down", "up"] and not everything.truncated


def test_fmt_step_and_refresh():
    assert [metrics.fmt_step(s) for s in (1, 5, 90, 120, 600, 3600, 10800, 86400)] == [
        "1 s", "5 s", "90 s", "2 min", "10 min", "1 h", "3 h", "1 d"]
    assert [metrics.refresh_s(s) for s in (1, 5, 15, 60, 600)] == [5, 5, 15, 60, 60]


@pytest.mark.parametrize(("services", "legends"), [(3, [True] * 5), (9, [True, False, False, False, False])],
                         ids=["few-every-chart", "many-the-first-only"])
def test_legends_on_every_chart_unless_there_are_many_lines(services, legends):
    window = metrics.custom_window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, 1, tzinfo=UTC), 5)
    names = [f"svc-{i}" for i in range(services)]
    buckets = pd.date_range(window.start, window.end, freq="5s", inclusive="left")
    frame = pd.DataFrame([{"service": n, "bucket": b, "step_s": 5, "requests": 10, "errors": 1, "rps": 2.0,
                           "error_rate": 10.0, "latency_avg_ms": 5.0, "latency_p50_ms": 4.0, "latency_p95_ms": 9.0,
                           "latency_p99_ms": 12.0, "cpu_percent": 3.0, "memory_mb": 64.0}
                          for n in names for b in buckets], columns=COLUMNS)
    none = Annotations(pd.DataFrame(columns=BREAKER_COLUMNS), [], pd.DataFrame(columns=SCALING_COLUMNS),
                       pd.DataFrame(columns=LOAD_TEST_COLUMNS))
    c = metric_charts.canvas(frame, window, "Custom", metric_charts.service_colours(names), none, [])
    figs: list[Any] = [metric_charts.quantity_figure(c, q) for q in metric_charts.QUANTITIES]
    figs.insert(2, metric_charts.latency_figure(c, ["p50", "p99"]))
    assert [f.layout.showlegend for f in figs] == legends
    assert [len(f.data) for f in figs] == [services, services, 2 * services, services, services]
    assert all(len(t.y) == 720 and t.dx == 5000 for f in figs for t in f.data)
