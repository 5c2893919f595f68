"""The Experiments page under AppTest: the editor (form and raw document in step, validated as typed) without the
API, then saving, running and following a run, its verdict and a comparison against a real engine."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from contract.experiments import ExperimentDocument, ExperimentRunDetailOut
from contract.roles import Role
from db.experiment_models import ExperimentRow
from db.models import Instance, Service
from engine.fleet.demo import start_demo_instance
from engine.fleet.processes import stop_all, wait_ready
from engine.runtime import Runtime
from tests.conftest import free_port, token_for, wait_for
from tests.ui.conftest import chart_spec, chart_traces, metrics, open_page, texts
from ui.client import ApiClient
from ui.experiments_client import HTML, JSON

PAGE = "pages/experiments.py"


def raw(at: AppTest) -> Any:
    """The raw document as the page shows it."""
    return json.loads(at.text_area(key="ex-raw").value or "")


def field(at: AppTest, label: str) -> Any:
    """The form's widget with this label (its key carries the editor's generation)."""
    found = [w for w in [*at.text_input, *at.number_input, *at.selectbox, *at.text_area] if w.label == label]
    assert len(found) == 1, f"{len(found)} widgets labelled {label!r}"
    return found[0]


def test_a_new_user_gets_the_starter_and_the_form_and_raw_document_stay_in_step(dash_env):
    at = open_page(PAGE)
    assert not at.exception
    assert any("is not reachable" in e for e in texts(at.error))  # no API: the editor drafts all the same
    doc = raw(at)
    assert doc["load"]["startRps"] == 50 and [s["targetRps"] for s in doc["load"]["stages"]] == [400, 50]
    assert doc["thresholds"] == [{"metric": "p95", "op": "<", "value": 200}]
    assert field(at, "Name").value == "orders-ramp" and field(at, "Start rate (req/s)").value == 50
    assert any(s.startswith("The document is valid.") for s in texts(at.success))

    field(at, "Name").set_value("checkout").run()  # the form writes the document
    assert raw(at)["name"] == "checkout"
    field(at, "Users").set_value(30).run()
    assert raw(at)["load"]["users"] == 30 and raw(at)["name"] == "checkout"

    doc = raw(at)
    doc["load"]["startRps"] = 75
    doc["description"] = "from the raw side"
    at.text_area(key="ex-raw").set_value(json.dumps(doc)).run()  # the raw document updates the form
    assert not at.exception
    assert field(at, "Start rate (req/s)").value == 75
    assert field(at, "Description").value == "from the raw side"
    assert field(at, "Name").value == "checkout"
    field(at, "Path").set_value("/work?ms=5").run()  # and the form still writes it, raw changes kept
    assert raw(at)["load"]["requests"][0]["path"] == "/work?ms=5" and raw(at)["load"]["startRps"] == 75


def test_a_bad_stage_is_named_by_its_field_and_blocks_save_and_run(dash_env):
    at = open_page(PAGE)
    doc = raw(at)
    doc["load"]["stages"][0]["durationS"] = 0
    at.text_area(key="ex-raw").set_value(json.dumps(doc)).run()
    [error] = [e for e in texts(at.error) if e.startswith("The document is not valid")]
    assert "`load.stages.0.durationS: Input should be greater than 0`" in error
    assert at.button(key="ex-save").proto.disabled and at.button(key="ex-run-start").proto.disabled
    assert at.button(key="ex-save").proto.help == "Fix the document first."

    at.text_area(key="ex-raw").set_value('{"name": "x",').run()  # not JSON: said, and the form keeps its values
    [error] = [e for e in texts(at.error) if e.startswith("The document is not valid")]
    assert "not JSON: Expecting property name enclosed in double quotes (line 1, column 14)" in error
    assert field(at, "Name").value == "orders-ramp"


def test_a_viewer_sees_the_editor_read_only(dash_env):
    at = open_page(PAGE, role=Role.VIEWER)
    assert not at.exception
    assert field(at, "Name").proto.disabled and at.text_area(key="ex-raw").proto.disabled
    for key in ("ex-save", "ex-run-start"):
        assert at.button(key=key).proto.disabled
        assert at.button(key=key).proto.help == "Needs the operator role; you are logged in as viewer."


# -- against a real engine, router and demo process -------------------------------------------------------------

QUICK: dict[str, Any] = {
    "name": "orders-quick",
    "load": {"service": "orders", "stages": [{"durationS": 1, "targetRps": 20}, {"durationS": 1, "targetRps": 20}],
             "users": 20, "requests": [{"method": "GET", "path": "/work?ms=1&cpu=0"}]},
    "faults": [{"kind": "network-latency", "atS": 0.5, "durationS": 1, "params": {"latency": 5}}],
    "thresholds": [{"metric": "p95", "op": "<", "value": 500}, {"metric": "p99", "op": "<", "value": 0.001}],
    "steadyState": [{"kind": "healthy"}],
}


@pytest.fixture(scope="module")
def target():
    instance = start_demo_instance("orders", free_port(), seed=11)
    try:
        wait_ready([instance])
        yield instance
    finally:
        stop_all([instance.process])


@pytest.fixture
def fleet(live_api, dash_env, target):
    """The engine with "orders" registered on the demo process, healthy."""
    with dash_env.begin() as s:
        s.add(Service(name="orders", instances=[Instance(url=target.url)]))
    live_api.reload_registry()
    spec = live_api.registry.by_name("orders")
    assert spec is not None
    assert wait_for(lambda: live_api.health_of(spec.instances[0].id).value == "healthy")
    return live_api


def ended(rt: Runtime, run_id: int) -> bool:
    """The run has ended."""
    return rt.experiments.run_detail(run_id).status != "running"


def test_save_and_run_from_the_page_follow_the_run_and_read_its_verdict(fleet, settings):
    at = open_page(PAGE)
    assert not at.exception and not at.error
    at.text_area(key="ex-raw").set_value(json.dumps({**QUICK, "load": {**QUICK["load"], "users": 5000}})).run()
    assert not [e for e in texts(at.error) if e.startswith("The document is not valid")]  # within the contract
    at.button(key="ex-save").click().run()  # past the engine's bound: its 422 names the field, nothing is stored
    [error] = texts(at.error)
    assert "(HTTP 422)" in error and "- load.users:" in error
    assert at.selectbox(key="ex-pick").value == 0
    with fleet.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ExperimentRow)) == 0

    at.text_area(key="ex-raw").set_value(json.dumps(QUICK)).run()
    at.button(key="ex-save").click().run()
    assert not at.exception and not at.error
    assert texts(at.success)[0] == "Experiment orders-quick saved as version 1."
    assert at.selectbox(key="ex-pick").value == 1
    assert "No run of this experiment yet. Press Run above." in texts(at.info)

    field(at, "Description").set_value("two seconds at 20 req/s").run()
    at.button(key="ex-run-start").click().run()  # the changed document is saved first (version 2), then run
    assert not at.exception and not at.error, texts(at.error)
    assert texts(at.success)[0] == "Run #1 of orders-quick v2 started."
    assert at.selectbox(key="ex-run").value == 1
    status = metrics(at)["Status"]
    assert status in ("🔵 running", "🟢 completed")
    assert wait_for(lambda: ended(fleet, 1), timeout=30)
    at.run()
    assert not at.exception
    m = metrics(at)
    assert (m["Status"], m["Phase"], m["Verdict"]) == ("🟢 completed", "done", "❌ fail")
    detail = fleet.experiments.run_detail(1)
    assert m["Load"] == f"{len(detail.seconds)} of 2 s" and m["Sent"] == f"{sum(s.sent for s in detail.seconds):,d}"
    [verdict] = [e for e in texts(at.markdown) if "❌ fail" in e]
    assert verdict.startswith("#### :red-background[❌ fail] run #1 completed: ")
    thresholds = next(d.value for d in at.dataframe if "threshold" in d.value.columns and "result" in d.value.columns)
    assert thresholds["threshold"].tolist() == ["p95 < 500", "p99 < 0.001"]
    assert thresholds["result"].tolist() == ["✅ pass", "❌ fail"]
    assert thresholds["figure"].tolist() == [t.figure for t in detail.thresholds]
    rate = chart_traces(at, "ex-rate-chart")
    assert rate["sent (achieved)"] == [s.sent for s in detail.seconds]
    assert rate["planned"] == [s.planned for s in detail.seconds] and max(rate["planned"]) > 0
    [span] = chart_spec(at, "ex-rate-chart")["layout"]["shapes"]  # the fault, from its start and end events
    starts = [e.atS for e in detail.events if e.kind == "fault-start"]
    ends = [e.atS for e in detail.events if e.kind == "fault-end"]
    assert (span["x0"], span["x1"]) == (starts[0], ends[0]) and 0.4 <= starts[0] < ends[0]
    assert [b.proto.label for b in at.get("download_button")][:2] == ["HTML report", "JSON report"]
    history = next(d.value for d in at.dataframe if "thresholds held" in d.value.columns)
    assert history[["id", "version", "verdict", "thresholds held"]].values.tolist() == [[1, 2, "❌ fail", "1 of 2"]]

    # what the two download buttons fetch when pressed: the HTML and the JSON report, as a viewer may
    reader = ApiClient(settings.api_base_url, token=token_for(Role.VIEWER))
    html = reader.experiment_report(1, HTML)
    assert html.lstrip().lower().startswith("<!doctype html") and "orders-quick" in html
    assert ExperimentRunDetailOut.model_validate_json(reader.experiment_report(1, JSON)) == detail

    viewer = open_page(PAGE, role=Role.VIEWER)  # a viewer reads the run, cannot run or edit
    assert viewer.button(key="ex-run-start").proto.disabled and viewer.text_area(key="ex-raw").proto.disabled
    assert metrics(viewer)["Verdict"] == "❌ fail"

    at.button(key="ex-run-start").click().run()  # unchanged: run as stored, no new version
    assert texts(at.success)[0] == "Run #2 of orders-quick v2 started."
    assert wait_for(lambda: ended(fleet, 2), timeout=30)
    at.run()
    assert (at.selectbox(key="ex-compare-a").value, at.selectbox(key="ex-compare-b").value) == (1, 2)
    compared = next(d.value for d in at.dataframe if "change" in d.value.columns)
    assert compared["threshold"].tolist() == ["p95 < 500", "p99 < 0.001"]
    assert compared["#1"].tolist() == ["✅ pass", "❌ fail"] and compared["#2"].tolist()[1] == "❌ fail"
    second = fleet.experiments.run_detail(2)
    assert compared["#2 figure"].tolist() == [t.figure for t in second.thresholds]


def test_a_viewer_cannot_stop_a_running_run_and_an_operator_stops_it(fleet):
    exp = fleet.experiments.save(ExperimentDocument.model_validate(
        {**QUICK, "load": {**QUICK["load"], "stages": [{"durationS": 30, "targetRps": 10}]}}))
    run = fleet.experiments.run(exp.id)
    try:
        viewer = open_page(PAGE, role=Role.VIEWER)
        assert not viewer.exception
        assert viewer.selectbox(key="ex-run").value == run.id
        assert metrics(viewer)["Status"] == "🔵 running" and metrics(viewer)["Verdict"] == "n/a"
        stop = viewer.button(key="ex-stop")
        assert stop.proto.disabled and stop.proto.help == "Needs the operator role; you are logged in as viewer."
        at = open_page(PAGE)
        at.button(key="ex-stop").click().run()
        assert not at.exception
        assert wait_for(lambda: ended(fleet, run.id), timeout=15)
        assert fleet.experiments.run_detail(run.id).status == "stopped"
    finally:
        if not ended(fleet, run.id):
            fleet.experiments.stop(run.id)
