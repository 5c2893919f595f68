"""/api/load-test/* and /api/load-tests: start, stop, live status, history, per-second samples and CSV."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue

from contract.errors import NotFound
from contract.loadtest import LoadTestDetailOut, LoadTestOut, LoadTestQuery, LoadTestStart
from contract.roles import Role
from db import queries
from db.models import LoadTestSample
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint

__all__ = ["api"]

api = ApiBlueprint("loadtests", tag="load tests")


def _sample_json(s: LoadTestSample) -> dict[str, Any]:
    return {"second": s.second, "at": s.at.isoformat(), "sent": s.sent, "ok": s.ok, "failed": s.failed,
            "dropped": s.dropped, "errors": s.errors, "latency": s.latency}


@api.route("POST", "/api/load-test/start", summary="Start an open-model load test (duration in s)",
           role=Role.OPERATOR, body=LoadTestStart, ok=(202, LoadTestOut), errors=(400, 409, 422, 503))
def start(body: LoadTestStart) -> ResponseReturnValue:
    """Validate (bounds, registered target), create the row, launch; 409 while another runs."""
    manager = runtime().loadtests
    req = manager.validate(body.concurrentUsers, body.requestsPerSecond, body.duration, body.targetService,
                           body.path, body.method)
    return jsonify(manager.start(req)), 202


@api.route("POST", "/api/load-test/stop", summary="Stop the running load test (ends within 1 s)",
           role=Role.OPERATOR, ok=(200, LoadTestOut), errors=(409, 503))
def stop() -> ResponseReturnValue:
    """Stop it and answer its final status."""
    return jsonify(runtime().loadtests.stop())


@api.route("GET", "/api/load-test/status", summary="The running or latest load test, live",
           role=Role.VIEWER, ok=(200, LoadTestOut), errors=(503,))
def status() -> ResponseReturnValue:
    """Totals, achieved rate, errors by kind, corrected and uncorrected percentiles."""
    return jsonify(runtime().loadtests.status())


@api.route("GET", "/api/load-tests", summary="Load test history, newest first", role=Role.VIEWER,
           query=LoadTestQuery, ok=(200, list[LoadTestOut]), errors=(503,))
def history(query: LoadTestQuery) -> ResponseReturnValue:
    """Every stored run (the live one with its stored totals)."""
    with runtime().sessions() as session:
        return jsonify([queries.load_test_json(r) for r in queries.load_tests(session, query.limit)])


@api.route("GET", "/api/load-tests/<int:test_id>", summary="One run with per-second samples (CSV: Accept text/csv)",
           role=Role.VIEWER, ok=(200, LoadTestDetailOut), errors=(404, 503), csv=True)
def detail(test_id: int) -> ResponseReturnValue:
    """A run and its samples; the samples as CSV when the client prefers text/csv."""
    with runtime().sessions() as session:
        row = queries.load_test(session, test_id)
        if row is None:
            raise NotFound("load test", str(test_id))
        if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
            csv = queries.load_test_samples_frame(session, test_id).to_csv(index=False)
            return Response(csv, mimetype="text/csv",
                            headers={"Content-Disposition": f"attachment; filename=load-test-{test_id}.csv"})
        body = queries.load_test_json(row)
        body["samples"] = [_sample_json(s) for s in queries.load_test_samples(session, test_id)]
        return jsonify(body)
