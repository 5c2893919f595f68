"""The Load Test page under AppTest: seeded runs from PostgreSQL, and a real run started and stopped from the form."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from contract.roles import Role
from db.models import Instance, LoadTest, LoadTestSample, Service
from engine.fleet.demo import start_demo_instance
from engine.fleet.processes import stop_all, wait_ready
from tests.conftest import free_port, wait_for
from tests.ui.conftest import chart_traces, metrics, open_page, texts

PAGE = "pages/load_test.py"
T0 = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
P = ("p50", "p90", "p95", "p99", "p999", "max", "mean")


def lat(*values: float | None) -> dict[str, float | None]:
    """p50, p90, p95, p99, p999, max, mean in that order."""
    return dict(zip(P, values, strict=True))


# (second, sent, ok, failed, dropped, errors, corrected, uncorrected)
RUN_1 = [
    (1, 100, 98, 2, 0, {"http_503": 2}, lat(20, 25, 30, 40, 45, 50, 21), lat(19, 23, 28, 35, 40, 44, 20)),
    (2, 100, 97, 3, 0, {"http_503": 1, "timeout": 2}, lat(22, 28, 33, 60, 80, 90, 24),
     lat(20, 24, 29, 38, 41, 45, 21)),
    (3, 90, 90, 0, 10, {}, lat(30, 40, 50, 70, 90, 95, 33), lat(21, 25, 30, 39, 42, 46, 22)),
]
RUN_1_SUMMARY = {
    "achievedRps": 96.67, "shortfallPercent": 3.33, "elapsedSeconds": 3.0, "sent": 290,
    "errors": {"http_503": 3, "timeout": 2},
    "latency": {"corrected": lat(22, 35, 45, 65, 88, 95, 26.1), "uncorrected": lat(20, 24, 29, 37, 41, 46, 21.0)},
}
# second 2 had no answer at all: its percentiles are unknown (a gap, not 0); p99.9 of the run unknown too
RUN_2: list[Any] = [
    (1, 50, 50, 0, 0, {}, lat(10, 12, 13, 15, 16, 16, 11), lat(9, 11, 12, 14, 15, 15, 10)),
    (2, 25, 0, 0, 0, {}, lat(*[None] * 7), lat(*[None] * 7)),
]
RUN_2_SUMMARY = {
    "achievedRps": 37.5, "shortfallPercent": 25.0, "elapsedSeconds": 2.0, "sent": 75, "errors": {},
    "latency": {"corrected": lat(10, 12, 13, 15, None, 16, 11), "uncorrected": lat(9, 11, 12, 14, None, 15, 10)},
}


def seed_run(sessions: sessionmaker[Session], *, status: str, rate: float, duration: float, samples: list[Any],
             summary: dict[str, Any], started: datetime, users: int = 10, path: str = "/work?ms=20") -> int:
    """One load_tests row and its samples, as the engine's writer stores them; its id."""
    ok = sum(s[2] for s in samples)
    failed = sum(s[3] for s in samples)
    with sessions.begin() as s:
        row = LoadTest(status=status, concurrent_users=users, requests_per_second=rate, duration_s=duration,
                       target_service="orders", path=path, method="GET", workers=1, total_requests=ok + failed,
                       successful_requests=ok, failed_requests=failed, dropped_requests=sum(x[4] for x in samples),
                       started_at=started, ended_at=None if status == "running" else started + timedelta(
                           seconds=duration), summary=summary)
        s.add(row)
        s.flush()
        s.add_all(LoadTestSample(load_test_id=row.id, second=sec, at=started + timedelta(seconds=sec), sent=sent,
                                 ok=okn, failed=bad, dropped=drop, errors=errs,
                                 latency={"corrected": corr, "uncorrected": unc})
                  for sec, sent, okn, bad, drop, errs, corr, unc in samples)
        return row.id


def seed_two(sessions: sessionmaker[Session]) -> tuple[int, int]:
    one = seed_run(sessions, status="completed", rate=100, duration=3, samples=RUN_1, summary=RUN_1_SUMMARY,
                   started=T0)
    two = seed_run(sessions, status="stopped", rate=50, duration=10, samples=RUN_2, summary=RUN_2_SUMMARY,
                   started=T0 + timedelta(minutes=5), users=5, path="/work?ms=10")
    return one, two


TABLE_COLUMNS = {"lt-latency-table": "corrected ms", "lt-errors-table": "kind", "lt-history": "target"}


def table(at: AppTest, key: str) -> pd.DataFrame:
    """The frame of the st.dataframe with this key (found by a column only it has)."""
    found = [d.value for d in at.dataframe if TABLE_COLUMNS[key] in d.value.columns]
    assert len(found) == 1, f"{len(found)} tables like {key!r}"
    return found[0]


def same(a: list[Any], b: list[Any]) -> bool:
    """Equal lists where NaN/None on both sides count as equal (a gap is a gap)."""
    def norm(v: Any) -> Any:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
    return [norm(v) for v in a] == [norm(v) for v in b]


# -- seeded runs (no API: the page says so and shows what PostgreSQL holds) --------------------------


def test_a_finished_run_shows_its_figures_charts_tables_and_csv(dash_env, monkeypatch):
    one, _ = seed_two(dash_env)
    stored: list[tuple[bytes, str | None]] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def keep(self, data, mimetype, kind, filename=None):  # the CSV the download button serves
        stored.append((data, filename))
        return original(self, data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    at = open_page(PAGE)
    assert not at.exception
    assert any("is not reachable" in e for e in texts(at.error))
    assert at.selectbox(key="lt-run").value == 2  # the newest first
    at.selectbox(key="lt-run").set_value(one).run()
    assert not at.exception
    m = metrics(at)
    assert (m["Status"], m["Requested rate"], m["Achieved rate"], m["Shortfall"]) == (
        "🟢 completed", "100.0 req/s", "96.7 req/s", "3.3 %")
    assert (m["Elapsed"], m["Answered"], m["Successful"], m["Failed"], m["Dropped"]) == (
        "3.0 s of 3 s", "290", "285", "5", "10")
    assert (m["In flight"], m["Backlog"], m["p99 (corrected)"]) == ("0", "0", "65.0 ms")

    assert chart_traces(at, "lt-rate-chart") == {
        "requested": [100.0, 100.0], "sent (achieved)": [100, 100, 90], "answered OK": [98, 97, 90]}
    assert chart_traces(at, "lt-errors-chart") == {
        "http_503": [2, 1, 0], "timeout": [0, 2, 0], "dropped": [0, 0, 10]}
    assert chart_traces(at, "lt-latency-chart") == {
        "p50 corrected": [20.0, 22.0, 30.0], "p95 corrected": [30.0, 33.0, 50.0], "p99 corrected": [40.0, 60.0, 70.0],
        "p50 uncorrected": [19.0, 20.0, 21.0], "p95 uncorrected": [28.0, 29.0, 30.0],
        "p99 uncorrected": [35.0, 38.0, 39.0]}
    at.toggle(key="lt-uncorrected").set_value(False).run()
    assert list(chart_traces(at, "lt-latency-chart")) == ["p50 corrected", "p95 corrected", "p99 corrected"]

    latency = table(at, "lt-latency-table")
    assert latency["figure"].tolist() == ["p50", "p90", "p95", "p99", "p99.9", "max", "mean"]
    assert latency["corrected ms"].tolist() == [22, 35, 45, 65, 88, 95, 26.1]
    assert latency["uncorrected ms"].tolist() == [20, 24, 29, 37, 41, 46, 21.0]
    errors = table(at, "lt-errors-table")
    assert errors["kind"].tolist() == ["http_503", "timeout"]
    assert errors["requests"].tolist() == [3, 2]
    assert errors["share %"].round(3).tolist() == [round(300 / 290, 3), round(200 / 290, 3)]

    csv = pd.read_csv(io.BytesIO(next(data for data, name in stored if name == "load-test-1.csv")))
    assert list(csv.columns[:7]) == ["second", "at", "sent", "ok", "failed", "dropped", "errors"]
    assert [c for c in csv.columns if c.startswith("corrected_")] == [f"corrected_{p}_ms" for p in P]
    assert csv["sent"].tolist() == [100, 100, 90]
    assert csv["corrected_p99_ms"].tolist() == [40, 60, 70]
    assert json.loads(csv["errors"][1]) == {"http_503": 1, "timeout": 2}


def test_unknown_figures_show_na_and_gaps_stay_gaps(dash_env):
    seed_two(dash_env)
    at = open_page(PAGE)  # run 2 (stopped): p99.9 unknown, a second without answers
    latency = table(at, "lt-latency-table")
    assert math.isnan(latency["corrected ms"][4]) and latency["corrected ms"][3] == 15
    assert all(d.proto.placeholder == "n/a" for d in at.dataframe)
    traces = chart_traces(at, "lt-latency-chart")
    assert same(traces["p99 corrected"], [15.0, None])
    assert "No request failed." in texts(at.info)

    running = seed_run(dash_env, status="running", rate=200, duration=60, samples=[], summary={},
                       started=T0 + timedelta(minutes=10))
    at.run()
    assert at.selectbox(key="lt-run").value == running
    m = metrics(at)
    assert (m["Status"], m["Achieved rate"], m["Shortfall"], m["In flight"], m["Backlog"]) == (
        "🔵 running", "n/a", "n/a", "n/a", "n/a")  # only the engine knows these; it is not reachable
    assert m["Elapsed"] == "n/a of 60 s" and m["p99 (corrected)"] == "n/a"
    assert "No per-second samples yet: the first one is stored a second after the start." in texts(at.info)
    assert "Errors not known yet." in texts(at.info)
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("lt-rate-chart")]


def test_history_lists_runs_newest_first_and_the_overlay_compares_two(dash_env):
    seed_two(dash_env)
    at = open_page(PAGE)
    assert not at.exception
    history = table(at, "lt-history")
    assert history["id"].tolist() == [2, 1]
    assert history["status"].tolist() == ["🟠 stopped", "🟢 completed"]
    assert history["target"].tolist() == ["orders GET /work?ms=10", "orders GET /work?ms=20"]
    assert history["achieved req/s"].tolist() == [37.5, 96.67]
    assert history["answered"].tolist() == [50, 290]
    assert history["p99 corrected ms"].tolist() == [15.0, 65.0]
    assert (at.selectbox(key="lt-compare-a").value, at.selectbox(key="lt-compare-b").value) == (1, 2)
    traces = chart_traces(at, "lt-overlay")
    assert list(traces) == ["#1 req/s", "#1 p99", "#2 req/s", "#2 p99"]
    assert traces["#1 req/s"] == [100, 100, 90] and traces["#2 req/s"] == [50, 25]
    assert traces["#1 p99"] == [40.0, 60.0, 70.0] and same(traces["#2 p99"], [15.0, None])

    at.selectbox(key="lt-compare-b").set_value(1).run()
    assert "Pick two different runs." in texts(at.info)

    # a newer run: the viewer on the newest run follows it; one looking at an older run stays there
    assert at.selectbox(key="lt-run").value == 2
    three = seed_run(dash_env, status="completed", rate=10, duration=1, samples=RUN_2[:1], summary=RUN_2_SUMMARY,
                     started=T0 + timedelta(minutes=20))
    at.run()
    assert at.selectbox(key="lt-run").value == three
    # the comparison moves to the newest two, except a side chosen on purpose (B was set to #1 above)
    assert (at.selectbox(key="lt-compare-a").value, at.selectbox(key="lt-compare-b").value) == (2, 1)
    at.selectbox(key="lt-run").set_value(1).run()
    seed_run(dash_env, status="completed", rate=10, duration=1, samples=[], summary={},
             started=T0 + timedelta(minutes=30))
    at.run()
    assert at.selectbox(key="lt-run").value == 1
    assert (at.selectbox(key="lt-compare-a").value, at.selectbox(key="lt-compare-b").value) == (3, 1)  # A follows
    assert table(at, "lt-history")["id"].tolist() == [4, 3, 2, 1]


def test_an_empty_history_says_so(dash_env):
    at = open_page(PAGE)
    assert not at.exception
    assert "No load test has run yet. Start one above." in texts(at.info)
    assert "Two runs are needed to compare." in texts(at.info)
    assert "No services registered yet, so nothing to load. Register one on the Services page." in texts(at.info)
    assert at.button(key="lt-start").proto.disabled


def test_a_viewer_cannot_start(dash_env):
    with dash_env.begin() as s:
        s.add(Service(name="orders", instances=[Instance(url="http://127.0.0.1:7101")]))
    viewer = open_page(PAGE, role=Role.VIEWER)
    start = viewer.button(key="lt-start")
    assert start.proto.disabled
    assert start.proto.help == "Needs the operator role; you are logged in as viewer."
    operator = open_page(PAGE)
    assert not operator.button(key="lt-start").proto.disabled
    assert operator.selectbox(key="lt-service").options == ["orders"]


# -- a real run: engine, router and a demo process --------------------------------------------------


@pytest.fixture(scope="module")
def target():
    instance = start_demo_instance("orders", free_port(), seed=7)
    try:
        wait_ready([instance])
        yield instance
    finally:
        stop_all([instance.process])


def test_start_from_the_form_runs_live_and_stop_stops_it(live_api, dash_env, target):
    with dash_env.begin() as s:
        s.add(Service(name="orders", instances=[Instance(url=target.url)]))
    live_api.reload_registry()
    spec = live_api.registry.by_name("orders")
    assert spec is not None
    assert wait_for(lambda: live_api.health_of(spec.instances[0].id).value == "healthy")

    at = open_page(PAGE)
    assert not at.exception and not at.error
    at.number_input(key="lt-users").set_value(5)
    at.number_input(key="lt-rate").set_value(20.0)
    at.number_input(key="lt-duration").set_value(30)
    at.text_input(key="lt-path").set_value("work")  # not a path: the API's 422 is shown, nothing starts
    at.button(key="lt-start").click().run()
    [error] = texts(at.error)
    assert "(HTTP 422)" in error and "- path:" in error
    with dash_env() as s:
        assert s.scalar(select(func.count()).select_from(LoadTest)) == 0

    at.text_input(key="lt-path").set_value("/work?ms=1&cpu=0")
    at.button(key="lt-start").click().run()
    assert not at.exception and not at.error
    assert texts(at.success) == ["Load test #1 started: 20.0 req/s for 30 s against orders GET /work?ms=1&cpu=0."]
    assert live_api.loadtests.status().status == "running"
    assert at.selectbox(key="lt-run").value == 1
    assert metrics(at)["Status"] == "🔵 running"
    start = at.button(key="lt-start")
    assert start.proto.disabled and start.proto.help == "Load test #1 is running; stop it first."

    with dash_env() as s:  # the first second reaches PostgreSQL through the writer
        assert wait_for(lambda: s.scalar(select(func.count()).select_from(LoadTestSample)) >= 1)
    at.run()
    assert "From the engine · refreshes every 1 s" in [c.value for c in at.caption]
    assert chart_traces(at, "lt-rate-chart")["sent (achieved)"][0] == 20
    assert metrics(at)["In flight"] != "n/a"
    viewer = open_page(PAGE, role=Role.VIEWER)
    assert viewer.button(key="lt-stop").proto.disabled  # a viewer sees the run, cannot stop it

    at.button(key="lt-stop").click().run()
    assert not at.exception and not at.error
    status = live_api.loadtests.status()
    assert status.status == "stopped"
    [message] = texts(at.success)
    assert message.startswith(f"Load test #1 stopped: {status.totalRequests} answered, 0 failed")
    m = metrics(at)
    assert (m["Status"], m["Answered"]) == ("🟠 stopped", str(status.totalRequests))
    assert not at.button(key="lt-start").proto.disabled
    assert not [b for b in at.button if b.key == "lt-stop"]  # nothing to stop
    with dash_env() as s:
        assert s.get(LoadTest, 1).status == "stopped"
