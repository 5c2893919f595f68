"""Experiments over the API: save, versions, delete, the document checked (each bad one refused with the field named,
nothing stored or started), and one run at a time, never beside a load test.

A runtime behind the Flask test client against one real demo process; the run tests start its loop.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from sqlalchemy import func, select, text

from db.experiment_models import ExperimentRow, ExperimentRunRow, ExperimentVersionRow
from engine.runtime import Runtime
from tests.api.conftest import demo_process, started_client
from tests.conftest import wait_for


@pytest.fixture(scope="module")
def target():
    with demo_process(seed=5) as instance:
        yield instance


@pytest.fixture
def registered(client, target):
    assert client.post("/api/services", json={"name": "orders", "url": target.url}).status_code == 201
    return client


@pytest.fixture
def live(clean_db, settings, target):
    with started_client(settings, target.url) as pair:
        yield pair


DOC = {
    "name": "orders-latency",
    "description": "p95 holds under a ramp",
    "load": {"service": "orders", "stages": [{"durationS": 1, "targetRps": 20}, {"durationS": 1, "targetRps": 20}],
             "requests": {"method": "GET", "path": "/work?ms=1&cpu=0"}},
    "faults": [{"kind": "network-latency", "atS": 0.5, "durationS": 1, "params": {"latency": 50}}],
    "thresholds": ["p95 < 500", {"metric": "errorRate", "op": "<", "value": 1, "windowS": 1, "abortOnFail": True}],
    "steadyState": [{"kind": "healthy"}],
}


def count(rt_or_sessions, model) -> int:
    with rt_or_sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def changed(**parts):
    doc = copy.deepcopy(DOC)
    for dotted, value in parts.items():
        node: Any = doc
        *path, last = dotted.split("__")
        for key in path:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return doc


def test_save_read_version_and_delete(registered, runtime):
    c = registered
    r = c.post("/api/experiments", json=DOC)
    assert r.status_code == 201, r.text
    created = r.json
    assert (created["name"], created["version"]) == ("orders-latency", 1)
    # the short threshold form is stored as its object; a lone request as a list of one
    assert created["document"]["thresholds"][0] == {"metric": "p95", "op": "<", "value": 500.0, "windowS": None,
                                                     "abortOnFail": False, "delayS": 0.0}
    assert created["document"]["load"]["requests"][0]["path"] == "/work?ms=1&cpu=0"
    eid = created["id"]
    assert [e["id"] for e in c.get("/api/experiments").json] == [eid]
    assert c.get(f"/api/experiments/{eid}").json["document"]["description"] == "p95 holds under a ramp"

    r = c.put(f"/api/experiments/{eid}", json=changed(description="second"))
    assert r.status_code == 200 and r.json["version"] == 2 and r.json["document"]["description"] == "second"
    with runtime.sessions() as s:
        kept = s.execute(select(ExperimentVersionRow.version, ExperimentVersionRow.document)
                         .order_by(ExperimentVersionRow.version)).all()
    assert [(v, d["description"]) for v, d in kept] == [(1, "p95 holds under a ramp"), (2, "second")]

    assert c.post("/api/experiments", json=DOC).status_code == 409  # the name is taken
    assert c.put("/api/experiments/999", json=DOC).status_code == 404
    assert c.delete(f"/api/experiments/{eid}").status_code == 200
    assert c.get(f"/api/experiments/{eid}").status_code == 404
    assert count(runtime.sessions, ExperimentVersionRow) == 0
    runtime.writer.flush()
    with runtime.sessions() as s:
        actions = s.execute(text("SELECT action, outcome FROM audit_log WHERE action LIKE 'experiments.%' "
                                 "ORDER BY id")).all()
    assert [tuple(a) for a in actions] == [
        ("experiments.create_experiment", 201), ("experiments.update_experiment", 200),
        ("experiments.create_experiment", 409), ("experiments.update_experiment", 404),
        ("experiments.delete_experiment", 200)]


BAD = {
    "negative-stage-duration": (changed(load__stages__0__durationS=-1), 422, "load.stages[0].durationS"),
    "unknown-fault-kind": (changed(faults=[{"kind": "cpu-hog", "atS": 0, "durationS": 1}]), 422, "faults[0]"),
    "unknown-threshold-metric": (changed(thresholds=["p42 < 10"]), 422, "thresholds[0].metric"),
    "unknown-service": (changed(load__service="nope"), 422, "load.service"),
    "unknown-fault-service": (changed(faults__0__params={"latency": 5, "serviceName": "nope"}), 422,
                              "faults[0].service"),
    "scaling-unmanaged": (changed(faults=[{"atS": 0.5, "service": "orders", "scaleTo": 2}]), 422,
                          "faults[0].service"),
    "step-after-load-end": (changed(faults__0__atS=2), 422, "faults[0].atS"),
    "probe-unknown-service": (changed(steadyState=[{"kind": "healthy", "service": "nope"}]), 422,
                              "steadyState[0].service"),
    "rate-over-max": (changed(load__stages=[{"durationS": 1, "targetRps": 30_000}]), 422, "load.stages"),
    "users-over-max": (changed(load__users=5000), 422, "load.users"),
    "latency-probe-without-bound": (changed(steadyState=[{"kind": "latency"}]), 422, "steadyState[0]"),
}


@pytest.mark.parametrize(("doc", "status", "field"), BAD.values(), ids=BAD.keys())
def test_a_bad_document_is_refused_naming_the_field_and_nothing_is_stored(registered, runtime, doc, status, field):
    c = registered
    r = c.post("/api/experiments", json=doc)
    assert r.status_code == status, r.text
    assert field in [d["field"] for d in r.json["details"]], r.json
    assert count(runtime.sessions, ExperimentRow) == 0
    eid = c.post("/api/experiments", json=DOC).json["id"]
    r = c.put(f"/api/experiments/{eid}", json={**doc, "name": DOC["name"]})
    assert r.status_code == status and field in [d["field"] for d in r.json["details"]]
    assert c.get(f"/api/experiments/{eid}").json["version"] == 1
    assert count(runtime.sessions, ExperimentVersionRow) == 1


def test_one_run_at_a_time_and_never_beside_a_load_test(live):
    rt, c = live
    eid = c.post("/api/experiments", json=changed(faults=[])).json["id"]
    r = c.post(f"/api/experiments/{eid}/run")
    assert r.status_code == 202, r.text
    run = r.json
    assert (run["status"], run["experimentId"], run["version"]) == ("running", eid, 1)
    again = c.post(f"/api/experiments/{eid}/run")
    assert again.status_code == 409 and f"experiment run {run['id']} is running" in again.json["error"]
    assert c.delete(f"/api/experiments/{eid}").status_code == 409
    assert c.post("/api/experiment-runs/999/stop").status_code == 404
    ended = wait_for(lambda: (d := c.get(f"/api/experiment-runs/{run['id']}").json)["status"] != "running" and d, 15)
    assert ended["status"] == "completed" and ended["verdict"] == "pass", ended
    assert c.post(f"/api/experiment-runs/{run['id']}/stop").status_code == 409  # not running any more
    assert [r["id"] for r in c.get(f"/api/experiment-runs?experimentId={eid}").json] == [run["id"]]

    assert c.post("/api/load-test/start", json={"concurrentUsers": 2, "requestsPerSecond": 5, "duration": 5,
                                                "targetService": "orders"}).status_code == 202
    refused = c.post(f"/api/experiments/{eid}/run")
    assert refused.status_code == 409 and "load test" in refused.json["error"]
    assert count(rt.sessions, ExperimentRunRow) == 1
    assert c.post("/api/load-test/stop").status_code == 200
    assert c.get("/api/experiment-runs/999").status_code == 404


def test_a_run_left_running_is_interrupted_at_the_next_start(registered, runtime, settings):
    eid = registered.post("/api/experiments", json=changed(faults=[])).json["id"]
    with runtime.sessions.begin() as s:
        s.execute(text("INSERT INTO experiment_runs (experiment_id, experiment_name, version, document, status, "
                       "phase, started_at) SELECT id, name, version, document, 'running', 'load', now() "
                       "FROM experiments WHERE id = :i"), {"i": eid})
    rt2 = Runtime.open(settings)
    try:
        with rt2.sessions() as s:
            row = s.scalars(select(ExperimentRunRow)).one()
        assert (row.status, row.phase, row.ended_at is not None) == ("interrupted", "done", True)
    finally:
        rt2.stop()


def test_the_engines_stop_stops_a_running_experiment_and_ends_its_faults(live, db_engine):
    rt, c = live
    doc = changed(name="long", load__stages=[{"durationS": 30, "targetRps": 10}], faults__0__atS=0.2,
                  faults__0__durationS=30, thresholds=[])
    eid = c.post("/api/experiments", json=doc).json["id"]
    run = c.post(f"/api/experiments/{eid}/run").json
    assert wait_for(lambda: any(e.kind == "fault-start" for e in rt.experiments.run_detail(run["id"]).events), 10)
    began = time.monotonic()
    rt.stop()
    assert time.monotonic() - began < 10
    with db_engine.connect() as conn:
        status, reason, ended = conn.execute(text("SELECT status, reason, ended_at FROM experiment_runs WHERE id = :i"),
                                             {"i": run["id"]}).one()
        active = conn.scalar(text("SELECT count(*) FROM simulations WHERE status = 'active'"))
    assert (status, reason, ended is not None, active) == ("stopped", "the engine stopped", True, 0)
