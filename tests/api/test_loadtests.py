"""Load tests over the API: validation, one at a time, live status, stop, history, samples and CSV.

A started runtime (engine loop, no HTTP server) behind the Flask test client, against one real demo process.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from db.models import LoadTest, LoadTestSample
from engine.runtime import Runtime
from tests.api.conftest import demo_process, started_client
from tests.conftest import wait_for


@pytest.fixture(scope="module")
def target():
    with demo_process(seed=3) as instance:
        yield instance


@pytest.fixture
def live(clean_db, settings, target):
    with started_client(settings, target.url, max_rps=500, max_duration=120, max_users=50) as pair:
        yield pair


def rows(rt):
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(LoadTest))


def never_early(latency) -> bool:
    """Each request's latency from its due time is at least its latency from its send, so every figure is too."""
    return all(latency["corrected"][k] >= latency["uncorrected"][k]
               for k in ("p50", "p90", "p95", "p99", "p999", "max", "mean"))


GOOD = {"concurrentUsers": 5, "requestsPerSecond": 50, "duration": 1, "targetService": "orders",
        "path": "/work?ms=1&cpu=0"}
BAD = {
    "users-missing": ({k: v for k, v in GOOD.items() if k != "concurrentUsers"}, "concurrentUsers"),
    "rate-negative": ({**GOOD, "requestsPerSecond": -1}, "requestsPerSecond"),
    "rate-over-max": ({**GOOD, "requestsPerSecond": 501}, "requestsPerSecond"),
    "duration-zero": ({**GOOD, "duration": 0}, "duration"),
    "duration-over-max": ({**GOOD, "duration": 121}, "duration"),
    "users-over-max": ({**GOOD, "concurrentUsers": 51}, "concurrentUsers"),
    "unknown-service": ({**GOOD, "targetService": "nope"}, "targetService"),
    "free-url": ({**GOOD, "targetService": "http://example.com"}, "targetService"),
    "path-relative": ({**GOOD, "path": "work"}, "path"),
    "method": ({**GOOD, "method": "BREW"}, "method"),
    "extra-field": ({**GOOD, "url": "http://127.0.0.1:1"}, "url"),
    "users-text": ({**GOOD, "concurrentUsers": "many"}, "concurrentUsers"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_names_the_field_and_creates_no_row(live, case):
    rt, c = live
    body, field = BAD[case]
    r = c.post("/api/load-test/start", json=body)
    assert r.status_code == 422, r.json
    assert field in [d["field"] for d in r.json["details"]]
    if "over-max" in case:
        assert "MAX_" in r.json["details"][0]["message"]
    assert rows(rt) == 0


def test_a_run_completes_with_consistent_totals_samples_history_and_csv(live):
    rt, c = live
    r = c.post("/api/load-test/start", json={**GOOD, "requestsPerSecond": 100, "duration": 2})
    assert r.status_code == 202 and r.json["status"] == "running" and r.json["id"] == 1
    again = c.post("/api/load-test/start", json=GOOD)
    assert again.status_code == 409 and "running" in again.json["error"]
    deadline = time.monotonic() + 10
    while (st := c.get("/api/load-test/status").json)["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert st["status"] == "completed"
    assert (st["totalRequests"], st["successfulRequests"], st["failedRequests"], st["droppedRequests"]) == (
        200, 200, 0, 0)
    assert st["achievedRps"] == 100.0 and st["shortfallPercent"] == 0.0 and st["errors"] == {}
    lat = st["latency"]
    assert lat["corrected"]["p99"] >= lat["uncorrected"]["p50"] > 0 and never_early(lat)
    assert lat["corrected"]["max"] >= lat["corrected"]["p999"] >= lat["corrected"]["p99"]
    rt.writer.flush()
    history = c.get("/api/load-tests").json
    assert [(h["id"], h["status"], h["totalRequests"]) for h in history] == [(1, "completed", 200)]
    detail = c.get("/api/load-tests/1").json
    assert sum(s["sent"] for s in detail["samples"]) == 200 and detail["samples"][0]["second"] == 1
    assert detail["latency"] == lat
    csv = c.get("/api/load-tests/1", headers={"Accept": "text/csv"})
    assert csv.mimetype == "text/csv"
    lines = csv.get_data(as_text=True).strip().splitlines()
    assert lines[0].startswith("second,at,sent,ok,failed,dropped,errors,corrected_p50_ms")
    assert len(lines) == 1 + len(detail["samples"])
    assert c.get("/api/load-tests/99").status_code == 404


def test_stop_ends_the_run_before_its_planned_end_and_is_stored(live):
    rt, c = live
    r = c.post("/api/load-test/start", json={**GOOD, "duration": 60})
    assert r.status_code == 202
    planned_end = datetime.fromisoformat(r.json["startTime"]) + timedelta(seconds=60)
    assert wait_for(lambda: c.get("/api/load-test/status").json["totalRequests"] >= 50, 30)
    r = c.post("/api/load-test/stop")
    assert r.status_code == 200 and r.json["status"] == "stopped" and r.json["endTime"]
    assert datetime.fromisoformat(r.json["endTime"]) < planned_end  # stop answered; it did not wait for the end
    assert r.json["totalRequests"] >= 50
    # open model: no request went out before it was due (50/s from the start), none after the stop
    assert never_early(r.json["latency"])
    assert r.json["sent"] + r.json["droppedRequests"] <= 50 * r.json["elapsedSeconds"] + 1 < 50 * 60
    assert c.post("/api/load-test/stop").status_code == 409
    assert c.get("/api/load-test/status").json["sent"] == r.json["sent"] == r.json["totalRequests"]
    with rt.sessions() as s:
        row = s.get(LoadTest, r.json["id"])
        assert (row.status, row.total_requests) == ("stopped", r.json["totalRequests"])
        assert s.scalar(select(func.sum(LoadTestSample.sent))) == r.json["totalRequests"]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="a run is split across processes on two cores or more")
def test_a_run_split_with_a_worker_process_counts_the_workers_drops(clean_db, settings, target):
    # 20/s for 1 s at 10/s a process: two shares of 10 requests, one user and one backlog place each, against a
    # target that takes about a second, so each share drops most of its requests, the worker's as well as ours
    with started_client(settings, target.url, max_rps=500, max_duration=120, max_users=50,
                        loadtest_process_rps=10.0, loadtest_backlog_s=0.05) as (rt, c):
        r = c.post("/api/load-test/start", json={"concurrentUsers": 2, "requestsPerSecond": 20, "duration": 1,
                                                 "targetService": "orders", "path": "/work?ms=1000&cpu=0"})
        assert r.status_code == 202 and r.json["workers"] == 2
        st = wait_for(lambda: (s := c.get("/api/load-test/status").json)["status"] != "running" and s, 60)
        assert st["status"] == "completed"
        assert st["sent"] + st["droppedRequests"] == 20  # every scheduled request of both processes, once
        assert st["totalRequests"] == st["successfulRequests"] == st["sent"]
        rt.writer.flush()
        samples = c.get(f"/api/load-tests/{st['id']}").json["samples"]
        assert (sum(s["sent"] for s in samples), sum(s["dropped"] for s in samples)) == (
            st["sent"], st["droppedRequests"])


def test_without_a_target_the_only_service_is_used_and_errors_are_counted_by_kind(live):
    _, c = live
    r = c.post("/api/load-test/start", json={"concurrentUsers": 2, "requestsPerSecond": 20, "duration": 1,
                                             "path": "/missing"})
    assert r.status_code == 202 and r.json["targetService"] == "orders"
    deadline = time.monotonic() + 10
    while (st := c.get("/api/load-test/status").json)["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert (st["totalRequests"], st["failedRequests"], st["errors"]) == (20, 20, {"http_404": 20})


def test_a_run_cut_off_by_a_crash_is_interrupted_at_the_next_start(runtime, settings):
    with runtime.sessions.begin() as s:
        s.add(LoadTest(status="running", concurrent_users=1, requests_per_second=1, duration_s=60,
                       target_service="orders", path="/", started_at=runtime.clock.now(), summary={}))
    again = Runtime.open(settings)
    try:
        assert again.loadtests.status().status == "interrupted"
    finally:
        again.stop()


def test_start_without_the_engine_loop_is_503_and_creates_no_row(client, runtime):
    assert client.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:7001"}).status_code == 201
    r = client.post("/api/load-test/start", json=GOOD)
    assert r.status_code == 503 and rows(runtime) == 0
    assert client.get("/api/load-test/status").json == {"status": "idle"}
