"""The Experiments page's helpers as plain functions: the editor's document <-> form mapping and its validation, and a
run's tables and charts built from a hand-made ExperimentRunDetailOut."""

from __future__ import annotations

import copy
import math
from typing import Any

import pandas as pd
import pytest

from contract.experiments import (
    ExperimentComparisonOut,
    ExperimentDocument,
    ExperimentRunDetailOut,
    threshold_text,
)
from ui import experiment_editor as ed
from ui import experiments as ex

FULL: dict[str, Any] = {
    "name": "checkout",
    "description": "d",
    "load": {"service": "orders", "startRps": 10, "stages": [{"durationS": 5, "targetRps": 20}], "users": 50,
             "requests": [{"method": "POST", "path": "/work", "headers": {"X-A": "1"}, "body": "{}"},
                          {"method": "GET", "path": "/other"}],
             "routeKey": "user-{n%10}"},
    "faults": [{"kind": "network-latency", "atS": 1, "durationS": 2, "params": {"latency": 100, "jitter": 5}},
               {"kind": "service-failure", "atS": 1, "durationS": 2,
                "params": {"probability": 0.5, "statusCode": 503, "mode": "error", "serviceName": "users"}},
               {"kind": "database-overload", "atS": 0, "durationS": 1, "params": {"intensity": "low"}},
               {"kind": "memory-leak", "atS": 0, "durationS": 1, "params": {"rate": 2.5}},
               {"atS": 3, "service": "orders", "scaleTo": 3}],
    "thresholds": [{"metric": "p95", "op": "<", "value": 200},
                   {"metric": "errorRate", "op": "<=", "value": 1.5, "windowS": 10, "abortOnFail": True,
                    "delayS": 5}],
    "steadyState": [{"kind": "healthy"}, {"kind": "latency", "service": "users", "p95BelowMs": 50, "requests": 5,
                                          "path": "/health"}],
}


def test_the_starter_document_is_valid_and_ramps_50_400_50_over_60_s():
    doc = ExperimentDocument.model_validate(ed.starter("orders"))
    assert doc.load.service == "orders" and doc.load.startRps == 50
    assert [(s.durationS, s.targetRps) for s in doc.load.stages] == [(30, 400), (30, 50)]
    assert doc.load.duration_s == 60
    assert [ed.problems(ed.starter("users"))] == [[]]
    assert ex.threshold_frame([]).empty
    assert [threshold_text(t) for t in doc.thresholds] == ["p95 < 200"]


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["load"]["stages"][0].update(durationS=0), "load.stages.0.durationS: Input should be greater than 0"),
    (lambda d: d["load"].pop("service"), "load.service: Field required"),
    (lambda d: d["thresholds"].append("p95 about 3"),
     'thresholds.2: Value error, must be an object or "<metric> <op> <value>", e.g. "p95 < 200"'),
    (lambda d: d["steadyState"][1].pop("p95BelowMs"), "steadyState.1: Value error, a latency probe needs p95BelowMs"),
], ids=["stage-duration", "no-service", "bad-short-threshold", "latency-probe-bound"])
def test_problems_name_the_field_path(change, expected):
    doc = copy.deepcopy(FULL)
    change(doc)
    assert expected in ed.problems(doc)
    assert ed.problems(FULL) == []
    assert ed.problems([1, 2]) == ["document: Input should be a valid dictionary or instance of ExperimentDocument"]


def test_form_parts_read_every_kind_of_step_threshold_and_probe():
    p = ed.form_parts(FULL)
    assert (p.name, p.service, p.start_rps, p.users, p.method, p.path, p.headers, p.body) == (
        "checkout", "orders", 10.0, 50, "POST", "/work", "X-A: 1", "{}")
    assert p.stages.to_dict("records") == [{"durationS": 5.0, "targetRps": 20.0}]
    steps = p.steps.set_index("kind")
    assert steps.loc["network-latency", "latencyMs"] == 100 and steps.loc["network-latency", "jitterMs"] == 5
    assert list(steps.loc["service-failure", ["service", "probability", "statusCode", "mode"]]) == [
        "users", 0.5, 503, "error"]
    assert steps.loc["database-overload", "intensity"] == "low"
    assert steps.loc["memory-leak", "leakMBs"] == 2.5
    assert list(steps.loc["scale", ["service", "scaleTo", "atS"]]) == ["orders", 3, 3]
    assert steps["durationS"].isna()["scale"]
    assert p.thresholds.iloc[1].tolist() == ["errorRate", "<=", 1.5, 10.0, True, 5.0]
    assert p.probes.iloc[1].tolist() == ["latency", "users", 50.0, 5.0, "/health"]


def test_the_form_written_back_gives_the_same_document_and_keeps_what_it_does_not_edit():
    assert ed.apply_form(FULL, ed.form_parts(FULL)) == FULL
    assert ed.apply_form(ed.starter(), ed.form_parts(ed.starter())) == ed.starter()


def test_a_form_change_lands_in_the_document():
    p = ed.form_parts(FULL)
    stages = pd.concat([p.stages, pd.DataFrame([{"durationS": 0.0, "targetRps": 5.0}, {"durationS": None,
                                                                                          "targetRps": None}])])
    thresholds = p.thresholds.copy()
    thresholds.loc[0, "value"] = 150.0
    steps = p.steps.iloc[[4]]  # only the scaling step left
    changed = ed.FormParts(**{**p.__dict__, "name": "renamed", "headers": "", "stages": stages,
                              "thresholds": thresholds, "steps": steps})
    doc = ed.apply_form(FULL, changed)
    assert doc["name"] == "renamed"
    assert doc["load"]["stages"] == [{"durationS": 5, "targetRps": 20}, {"durationS": 0, "targetRps": 5}]  # blank row
    assert doc["load"]["requests"][0] == {"method": "POST", "path": "/work", "body": "{}"}
    assert doc["faults"] == [{"atS": 3, "service": "orders", "scaleTo": 3}]
    assert doc["thresholds"][0] == {"metric": "p95", "op": "<", "value": 150}
    assert "load.stages.1.durationS: Input should be greater than 0" in ed.problems(doc)


def test_wrong_types_read_as_empty_and_short_thresholds_as_rows():
    p = ed.form_parts({"name": 5, "load": {"stages": [{"durationS": "abc"}], "users": "x"},
                       "thresholds": ["p99 <= 500", "nonsense"], "faults": "no"})
    assert (p.name, p.service, p.users) == ("", None, None)
    assert p.stages["durationS"].isna()[0]
    assert p.thresholds.iloc[0, :3].tolist() == ["p99", "<=", 500.0]
    assert p.thresholds.iloc[1, :2].isna().all()
    assert p.steps.empty
    assert ed.parse_headers("A: 1\n\nB:two:three\nC") == {"A": "1", "B": "two:three", "C": ""}


# -- a run, built by hand ----------------------------------------------------------------------------------------

RUN: dict[str, Any] = {
    "id": 4, "experimentId": 1, "experimentName": "checkout", "version": 2, "status": "completed", "phase": "done",
    "verdict": "fail", "reason": "p95 < 200 failed: 250 ms", "startedAt": "2026-12-01T10:00:00+00:00",
    "endedAt": "2026-12-01T10:00:12+00:00", "loadTestId": 9,
    "thresholds": [
        {"index": 0, "expression": "p95 < 200", "metric": "p95", "ok": False, "figure": 250.0, "failedAtS": 2.0,
         "aborted": False},
        {"index": 1, "expression": "errorRate <= 1.5 over 10 s", "metric": "errorRate", "ok": None, "figure": None,
         "failedAtS": None, "aborted": False}],
    "steadyState": [],
    "document": FULL,
    "seconds": [
        {"second": 0, "planned": 12.0, "sent": 12, "ok": 12, "failed": 0, "dropped": 0, "p50": 10.0, "p95": 150.0,
         "p99": 180.0, "errorRate": 0.0},
        {"second": 1, "planned": 14.0, "sent": 13, "ok": 0, "failed": 13, "dropped": 1, "p50": None, "p95": None,
         "p99": None, "errorRate": 100.0},
        {"second": 2, "planned": 16.0, "sent": 16, "ok": 16, "failed": 0, "dropped": 0, "p50": 20.0, "p95": 250.0,
         "p99": 300.0, "errorRate": 0.0}],
    "events": [
        {"at": "2026-12-01T10:00:03+00:00", "atS": 1.0, "kind": "fault-start", "title": "network-latency on orders",
         "detail": {"step": 0, "simulationId": 7}},
        {"at": "2026-12-01T10:00:03+00:00", "atS": 1.0, "kind": "fault-start", "title": "memory-leak not started",
         "detail": {"step": 3, "error": "409"}},
        {"at": "2026-12-01T10:00:04+00:00", "atS": 1.1, "kind": "fault-start", "title": "service-failure on users",
         "detail": {"step": 1, "simulationId": 8}},
        {"at": "2026-12-01T10:00:05+00:00", "atS": 3.0, "kind": "fault-end", "title": "simulation 7 ended",
         "detail": {"step": 0, "simulationId": 7}}],
}


def test_fault_spans_pair_start_and_end_and_leave_out_a_fault_that_did_not_start():
    run = ExperimentRunDetailOut.model_validate(RUN)
    assert ex.fault_spans(run.events) == [ex.FaultSpan(1.0, 3.0, "network-latency on orders"),
                                          ex.FaultSpan(1.1, None, "service-failure on users")]


def test_the_rate_and_latency_charts_show_measured_seconds_thresholds_and_faults():
    run = ExperimentRunDetailOut.model_validate(RUN)
    rate = ex.rate_chart(run)
    assert {t.name: list(t.y) for t in rate.data} == {
        "planned": [12.0, 14.0, 16.0], "sent (achieved)": [12, 13, 16], "failed": [0, 13, 0]}
    shapes = [(s.x0, s.x1) for s in rate.layout.shapes]
    assert shapes == [(1.0, 3.0), (1.1, 2.0)]  # the open fault runs to the last second
    latency = ex.latency_chart(run)
    assert latency is not None
    p95 = next(t for t in latency.data if t.name == "p95")
    assert p95.y[0] == 150.0 and math.isnan(p95.y[1])  # a second without answers is a gap
    lines = [s for s in latency.layout.shapes if s.y0 == s.y1]
    assert [line.y0 for line in lines] == [200]
    empty = ExperimentRunDetailOut.model_validate({**RUN, "seconds": []})
    assert ex.latency_chart(empty) is None


def test_thresholds_show_pass_fail_and_na_never_an_invented_figure():
    run = ExperimentRunDetailOut.model_validate(RUN)
    frame = ex.threshold_frame(run.thresholds)
    assert frame["result"].tolist() == ["❌ fail", "n/a"]
    assert frame["figure"].iloc[0] == 250.0 and math.isnan(frame["figure"].iloc[1])
    assert [ex.result_style(v) for v in ("✅ pass", "❌ fail", "n/a")] == [
        f"background-color: {ex.PASS_COLOUR}", f"background-color: {ex.FAIL_COLOUR}", ""]
    assert ex.verdict_label(run) == "❌ fail"
    assert ex.elapsed_s(run, pd.Timestamp("2030-01-01", tz="UTC").to_pydatetime()) == 12.0
    assert ex.history_frame([run])[["id", "status", "verdict", "thresholds held"]].values.tolist() == [
        [4, "🟢 completed", "❌ fail", "0 of 1"]]
    assert ex.event_frame(run.events)["kind"].tolist() == ["fault-start"] * 3 + ["fault-end"]


def test_the_comparison_table_has_each_runs_result_and_the_change():
    run = ExperimentRunDetailOut.model_validate(RUN)
    other = run.model_copy(update={"id": 5})
    a, b = run.thresholds
    cmp = ExperimentComparisonOut.model_validate({
        "a": run.model_dump(), "b": other.model_dump(),
        "thresholds": [{"expression": "p95 < 200", "a": a.model_dump(), "b": {**a.model_dump(), "ok": True,
                                                                                "figure": 180.0}, "change": -70.0},
                       {"expression": "errorRate <= 1.5 over 10 s", "a": b.model_dump(), "b": None,
                        "change": None}]})
    frame = ex.comparison_frame(cmp)
    assert list(frame.columns) == ["threshold", "#4", "#4 figure", "#5", "#5 figure", "change"]
    assert frame.iloc[0].tolist() == ["p95 < 200", "❌ fail", 250.0, "✅ pass", 180.0, -70.0]
    assert frame.iloc[1, [1, 3]].tolist() == ["n/a", "n/a"] and frame["change"].isna()[1]
