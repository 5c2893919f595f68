"""Experiments end to end: the real engine and API over HTTP against an echo server on loopback, and the CLI as a
process. One engine serves the module's tests (each its own experiment).

A ramp with a p95 threshold passes and sends what its schedule plans second by second; a latency fault trips an
abortOnFail threshold and the run halts with the fault lifted; a stop by hand ends the faults; the CLI exits 0 on
pass and 1 on fail and writes the report; the requests reach the target as the document writes them.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from contract.roles import Role
from engine.api import create_app
from engine.loadtest.schedule import planned
from engine.runtime import Runtime
from tests.conftest import settings_for, token_for, truncate_all, wait_for
from tests.e2e.echo import EchoServer

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def engine(db_engine, database_url, tmp_path_factory):
    """The engine with its API on a real port and one echo service, healthy; an operator's client."""
    truncate_all(db_engine)
    settings = settings_for(database_url, tmp_path_factory.mktemp("engine")).replace(alert_interval=0.25)
    echo = EchoServer("echo").start()
    rt = Runtime.open(settings)
    rt.start(app=create_app(rt))
    token = token_for(Role.OPERATOR)
    api = httpx.Client(base_url=settings.api_base_url, trust_env=False, timeout=15,
                       headers={"Authorization": "Bearer " + token})
    try:
        assert api.post("/api/services", json={"name": "echo", "url": echo.url}).status_code == 201
        assert wait_for(lambda: api.get("/api/services").json()[0]["instances"][0]["status"] == "healthy", 15)
        yield rt, api, echo, settings, token
    finally:
        api.close()
        rt.stop()
        echo.stop()


@pytest.fixture(autouse=True)
def clean_slate(engine):
    """Each test starts as the first did, whatever ran before it: no fault, every breaker closed, echo healthy."""
    _rt, api, _echo, _settings, _token = engine
    assert api.post("/api/simulate/stop-all").status_code == 200
    assert api.post("/api/circuit-breakers/reset-all").status_code == 200
    assert wait_for(lambda: status_of(api, "echo") == "healthy", 20)


def status_of(api, name):
    return next(s["status"] for s in api.get("/api/services").json() if s["name"] == name)


def finished(api, run_id, timeout=20):
    return wait_for(lambda: (d := api.get(f"/api/experiment-runs/{run_id}").json())["status"] != "running" and d,
                    timeout)


def cli(engine, document, tmp_path, name="doc.json"):
    """Run the CLI on the document; (exit code, output, report path)."""
    _rt, _api, _echo, settings, token = engine
    path, report = tmp_path / name, tmp_path / "report.html"
    path.write_text(json.dumps(document) if name.endswith(".json") else _yaml(document))
    env = {**os.environ, "API_URL": settings.api_base_url, "API_TOKEN": token}
    done = subprocess.run([sys.executable, "-m", "engine", "experiment", "run", str(path), "--report", str(report),
                           "--json", str(tmp_path / "report.json")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    return done.returncode, done.stdout + done.stderr, report


def _yaml(document):
    return importlib.import_module("yaml").safe_dump(document)


def latest_run(api):
    return api.get(f"/api/experiment-runs/{api.get('/api/experiment-runs').json()[0]['id']}").json()


def kinds(run):
    return [e["kind"] for e in run["events"]]


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


RAMP = {
    "name": "ramp",
    "load": {"service": "echo", "startRps": 20, "users": 50, "requests": {"path": "/ramp"},
             "stages": [{"durationS": 3, "targetRps": 100}, {"durationS": 2, "targetRps": 100},
                        {"durationS": 3, "targetRps": 20}]},
    "thresholds": ["p95 < 200", {"metric": "errorRate", "op": "<", "value": 1, "windowS": 2, "abortOnFail": True}],
    "steadyState": [{"kind": "healthy"}, {"kind": "latency", "p95BelowMs": 200, "requests": 10, "path": "/probe"}],
}


def test_a_ramp_passes_sends_its_plan_and_the_cli_exits_0(engine, tmp_path):
    _rt, api, echo, _settings, _token = engine
    code, output, report = cli(engine, RAMP, tmp_path, "ramp.yaml")
    assert code == 0, output
    run = latest_run(api)
    assert (run["status"], run["verdict"], run["reason"]) == ("completed", "pass", None), run
    assert [t["ok"] for t in run["thresholds"]] == [True, True] and run["thresholds"][0]["figure"] < 200
    assert [(p["phase"], p["ok"]) for p in run["steadyState"]] == [("before", True), ("before", True),
                                                                    ("after", True), ("after", True)]
    seconds = run["seconds"]
    assert [s["second"] for s in seconds][:8] == list(range(1, 9))
    for s in seconds[:8]:
        assert s["planned"] == pytest.approx(planned(20, [(3, 100), (2, 100), (3, 20)], s["second"]))
        assert abs(s["sent"] - s["planned"]) <= max(1.0, 0.02 * s["planned"]), seconds
    total = sum(s["sent"] for s in seconds)
    assert total == 560  # (20+100)/2*3 + 100*2 + (100+20)/2*3
    test = api.get(f"/api/load-tests/{run['loadTestId']}").json()
    assert test["status"] == "completed" and test["stages"][0] == {"durationS": 3.0, "targetRps": 100.0}
    assert sum(s["sent"] for s in test["samples"]) == total
    assert sum(1 for s in echo.seen if s.path == "/ramp") == total
    assert kinds(run).count("stage") == 3 and "phase" in kinds(run)
    assert report.read_text().startswith("<") and "ramp" in report.read_text()
    assert json.loads((tmp_path / "report.json").read_text())["id"] == run["id"]
    assert "verdict pass" in output and "[load]" in output


HALT = {
    "name": "latency-halts",
    "load": {"service": "echo", "users": 50, "stages": [{"durationS": 15, "targetRps": 20}],
             "requests": {"path": "/halt"}},
    "faults": [{"kind": "network-latency", "atS": 3, "durationS": 20, "params": {"latency": 300}}],
    "thresholds": [{"metric": "p95", "op": "<", "value": 200, "windowS": 2, "abortOnFail": True, "delayS": 1}],
    "steadyState": [{"kind": "healthy"}],
}


def test_a_latency_fault_halts_the_run_lifts_the_fault_and_the_cli_exits_1(engine, tmp_path):
    _rt, api, _echo, _settings, _token = engine
    code, output, report = cli(engine, HALT, tmp_path)
    assert code == 1, output
    run = latest_run(api)
    assert (run["status"], run["verdict"]) == ("halted", "fail"), run
    assert run["reason"].startswith("halted: p95 < 200 over 2 s failed: ") and " ms at " in run["reason"], run
    assert run["thresholds"][0]["aborted"] is True and run["thresholds"][0]["figure"] >= 200
    events = {e["kind"]: e for e in reversed(run["events"])}  # the first of each kind
    assert {"fault-start", "fault-end", "halt"} <= events.keys(), kinds(run)
    sim_id = events["fault-start"]["detail"]["simulationId"]
    halted = at(events["halt"]["at"])
    assert (halted - at(events["fault-start"]["at"])).total_seconds() <= 6
    # the blast radius ended within a second of the halt: the fault ended, the load stopped
    assert (at(events["fault-end"]["at"]) - halted).total_seconds() <= 1
    sims = api.get("/api/simulations").json()
    assert [s["status"] for s in sims if s["id"] == sim_id] == ["stopped"]
    assert not [s for s in sims if s["status"] == "active"]
    assert api.get(f"/api/load-tests/{run['loadTestId']}").json()["status"] == "stopped"
    assert sum(s["sent"] for s in run["seconds"]) < 15 * 20
    assert [(p["phase"], p["ok"]) for p in run["steadyState"]] == [("before", True), ("after", None)]
    assert "not run" in run["steadyState"][1]["detail"]
    assert report.exists() and "verdict fail" in output


def test_a_stop_by_hand_ends_the_faults(engine):
    _rt, api, _echo, _settings, _token = engine
    doc = {**HALT, "name": "stopped-by-hand", "thresholds": [],
           "faults": [{"kind": "network-latency", "atS": 0.5, "durationS": 30, "params": {"latency": 5}}]}
    eid = api.post("/api/experiments", json=doc).json()["id"]
    run = api.post(f"/api/experiments/{eid}/run").json()
    assert wait_for(lambda: "fault-start" in kinds(api.get(f"/api/experiment-runs/{run['id']}").json()), 10)
    assert [s["status"] for s in api.get("/api/simulations").json()].count("active") == 1
    stopped = api.post(f"/api/experiment-runs/{run['id']}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped", stopped.text
    assert not [s for s in api.get("/api/simulations").json() if s["status"] == "active"]
    detail = api.get(f"/api/experiment-runs/{run['id']}").json()
    assert (detail["phase"], detail["verdict"], detail["reason"]) == ("done", None, "stopped by hand")
    assert "fault-end" in kinds(detail) and detail["endedAt"] is not None
    assert api.get(f"/api/load-tests/{detail['loadTestId']}").json()["status"] == "stopped"


def test_the_requests_reach_the_target_as_the_document_writes_them(engine):
    _rt, api, echo, _settings, _token = engine
    doc = {"name": "shapes", "load": {
        "service": "echo", "stages": [{"durationS": 1, "targetRps": 10}], "startRps": 10, "routeKey": "user-{n%3}",
        "requests": [{"method": "POST", "path": "/orders?src=exp", "headers": {"X-Tenant": "acme"},
                      "body": '{"item": "tea", "qty": 2}'},
                     {"method": "GET", "path": "/orders/7", "headers": {"Accept": "text/plain"}}]}}
    eid = api.post("/api/experiments", json=doc).json()["id"]
    run = api.post(f"/api/experiments/{eid}/run").json()
    done = wait_for(lambda: (d := api.get(f"/api/experiment-runs/{run['id']}").json())["status"] != "running" and d,
                    15)
    assert done["verdict"] == "pass", done
    posts = [s for s in echo.seen if s.path == "/orders"]
    gets = [s for s in echo.seen if s.path == "/orders/7"]
    assert len(posts) == 5 and len(gets) == 5
    assert all(s.method == "POST" and s.query == b"src=exp" and s.body == b'{"item": "tea", "qty": 2}'
               and s.header("X-Tenant") == ["acme"] for s in posts)
    assert all(s.method == "GET" and s.header("Accept") == ["text/plain"] for s in gets)
    keys = sorted(s.header("X-Route-Key")[0] for s in posts + gets)
    assert set(keys) == {"user-0", "user-1", "user-2"}


def test_the_cli_exits_2_naming_the_field_when_the_document_is_refused(engine, tmp_path):
    doc = json.loads(json.dumps(RAMP))
    doc["name"], doc["load"]["service"] = "refused", "nope"
    code, output, report = cli(engine, doc, tmp_path)
    assert code == 2 and "load.service: no registered service named 'nope'" in output, output
    assert not report.exists()


def test_reports_and_the_comparison_of_two_runs(engine):
    _rt, api, _echo, _settings, _token = engine
    ids = {}
    for name, bound in (("compare-a", 10_000), ("compare-b", 0.001)):  # the same load; b's bound no run meets
        doc = {"name": name, "load": {"service": "echo", "startRps": 10, "stages": [{"durationS": 1, "targetRps": 10}]},
               "thresholds": [f"p95 < {bound}"]}
        run = api.post(f"/api/experiments/{api.post('/api/experiments', json=doc).json()['id']}/run").json()
        ids[name] = finished(api, run["id"])["id"]
    a, b = ids["compare-a"], ids["compare-b"]
    page = api.get(f"/api/experiment-runs/{b}/report", params={"compare": a})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-disposition"] == f"attachment; filename=experiment-run-{b}.html"
    assert '<h2 id="comparison">' in page.text and f"run {a}" in page.text
    as_json = api.get(f"/api/experiment-runs/{b}/report", headers={"Accept": "application/json"}).json()
    assert (as_json["id"], as_json["status"], as_json["verdict"]) == (b, "completed", "fail")
    compared = api.get(f"/api/experiment-runs/{a}/compare/{b}").json()
    assert (compared["a"]["id"], compared["b"]["id"]) == (a, b)
    assert [(t["a"] is None, t["b"] is None) for t in compared["thresholds"]] == [(False, True), (True, False)]
    assert api.get(f"/api/experiment-runs/{a}/compare/999").status_code == 404


def test_the_timeline_holds_the_targets_breaker_and_health_changes(engine):
    rt, api, _echo, _settings, _token = engine
    # a service of its own: the failures open its breaker and eject its one instance for a while, which would
    # leave the shared echo service without an instance for the tests after this one
    failing = EchoServer("failing").start()
    service = api.post("/api/services", json={"name": "failing", "url": failing.url}).json()
    rule = api.post("/api/alert-rules", json={"name": "failing-down", "kind": "service-down", "service": "failing",
                                              "forSeconds": 0, "severity": "warning"})
    assert rule.status_code == 201, rule.text
    try:
        assert wait_for(lambda: status_of(api, "failing") == "healthy", 15)
        _failure_timeline(rt, api)
    finally:
        api.delete(f"/api/alert-rules/{rule.json()['id']}")
        api.delete(f"/api/services/{service['id']}")
        failing.stop()


def _failure_timeline(rt, api):
    doc = {"name": "failure", "load": {"service": "failing", "stages": [{"durationS": 6, "targetRps": 10}],
                                       "startRps": 10},
           "faults": [{"kind": "service-failure", "atS": 1, "durationS": 3}]}
    eid = api.post("/api/experiments", json=doc).json()["id"]
    run = api.post(f"/api/experiments/{eid}/run").json()
    # while it runs, its row follows it second by second
    assert wait_for(lambda: len(rt.experiments.run_detail(run["id"]).seconds) >= 2, 10)
    with rt.sessions() as s:
        assert wait_for(lambda: s.scalar(text("SELECT jsonb_array_length(result->'seconds') FROM experiment_runs "
                                              "WHERE id = :i"), {"i": run["id"]}) or 0, 5) >= 1
    done = wait_for(lambda: (d := api.get(f"/api/experiment-runs/{run['id']}").json())["status"] != "running" and d,
                    20)
    assert done["status"] == "completed" and done["verdict"] == "pass"  # no threshold: nothing failed
    assert sum(s["failed"] for s in done["seconds"]) > 0
    seen = {e["kind"] for e in done["events"]}
    assert {"breaker", "health", "alert", "fault-start", "fault-end"} <= seen, done["events"]
    alert = next(e for e in done["events"] if e["kind"] == "alert")
    assert 1 <= alert["atS"] <= 7 and "failing-down" in alert["title"], alert
    assert next(e for e in done["events"] if e["kind"] == "fault-end")["detail"]["how"] == "expired"
    breaker = next(e for e in done["events"] if e["kind"] == "breaker")
    assert 1 <= breaker["atS"] <= 7 and "failing" in breaker["title"]

