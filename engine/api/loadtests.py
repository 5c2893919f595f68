"""/api/load-test/* and /api/load-tests: start, stop, live status, history, per-second samples and CSV."""

from __future__ import annotations

from flask import Response, request

from contract.errors import NotFound
from contract.loadtest import LoadTestDetailOut, LoadTestOut, LoadTestQuery, LoadTestStart
from contract.roles import Role
from db import queries
from db.loadtests import load_test_detail_out, load_test_out
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint

__all__ = ["api"]

api = ApiBlueprint("loadtests", tag="load tests")


@api.route("POST", "/api/load-test/start", summary="Start an open-model load test: a constant or staged rate",
           role=Role.OPERATOR, body=LoadTestStart, ok=(202, LoadTestOut), errors=(400, 409, 422, 503))
def start(body: LoadTestStart) -> LoadTestOut:
    """Validate (bounds, registered target), create the row, launch; 409 while another runs."""
    manager = runtime().loadtests
    return manager.start(manager.validate_shape(body))


@api.route("POST", "/api/load-test/stop", summary="Stop the running load test (ends within 1 s)",
           role=Role.OPERATOR, ok=(200, LoadTestOut), errors=(409, 503))
def stop() -> LoadTestOut:
    """Stop it and answer its final status."""
    return runtime().loadtests.stop()


@api.route("GET", "/api/load-test/status", summary="The running or latest load test, live",
           role=Role.VIEWER, ok=(200, LoadTestOut), errors=(503,))
def status() -> LoadTestOut:
    """Totals, achieved rate, errors by kind, corrected and uncorrected percentiles."""
    return runtime().loadtests.status()


@api.route("GET", "/api/load-tests", summary="Load test history, newest first", role=Role.VIEWER,
           query=LoadTestQuery, ok=(200, list[LoadTestOut]), errors=(503,))
def history(query: LoadTestQuery) -> list[LoadTestOut]:
    """Every stored run (the live one with its stored totals)."""
    with runtime().sessions() as session:
        return [load_test_out(r) for r in queries.load_tests(session, query.limit)]


@api.route("GET", "/api/load-tests/<int:test_id>", summary="One run with per-second samples (CSV: Accept text/csv)",
           role=Role.VIEWER, ok=(200, LoadTestDetailOut), errors=(404, 503), csv=True)
def detail(test_id: int) -> LoadTestDetailOut | Response:
    """A run and its samples; the samples as CSV when the client prefers text/csv."""
    with runtime().sessions() as session:
        row = queries.load_test(session, test_id)
        if row is None:
            raise NotFound("load test", str(test_id))
        if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
            csv = queries.load_test_samples_frame(session, test_id).to_csv(index=False)
            return Response(csv, mimetype="text/csv",
                            headers={"Content-Disposition": f"attachment; filename=load-test-{test_id}.csv"})
        return load_test_detail_out(row, queries.load_test_samples(session, test_id))
