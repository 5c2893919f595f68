"""/api/experiments and /api/experiment-runs: save, version, run, stop, read, report and compare experiments."""

from __future__ import annotations

from flask import Response, request
from pydantic import Field

from contract.errors import NotFound
from contract.experiments import (
    ExperimentComparisonOut,
    ExperimentDocument,
    ExperimentOut,
    ExperimentQuery,
    ExperimentRunDetailOut,
    ExperimentRunOut,
    ExperimentRunQuery,
)
from contract.requests import StrictModel
from contract.responses import DeletedOut
from contract.roles import Role
from db import experiments as queries
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.experiments.compare import compare
from engine.experiments.report import render_html

__all__ = ["ExperimentReportQuery", "api"]

api = ApiBlueprint("experiments", tag="experiments")


class ExperimentReportQuery(StrictModel):
    """GET /api/experiment-runs/<id>/report query string."""

    compare: int | None = Field(default=None, ge=1, le=2**31 - 1, description="another run to compare with")


@api.route("POST", "/api/experiments", summary="Save a new experiment (checked against the fleet and the bounds)",
           role=Role.OPERATOR, body=ExperimentDocument, ok=(201, ExperimentOut), errors=(400, 409, 422, 503))
def create_experiment(body: ExperimentDocument) -> ExperimentOut:
    """Version 1 of a new experiment; 409 when its name is taken."""
    return runtime().experiments.save(body)


@api.route("GET", "/api/experiments", summary="Experiments, last changed first", role=Role.VIEWER,
           query=ExperimentQuery, ok=(200, list[ExperimentOut]), errors=(400, 503))
def list_experiments(query: ExperimentQuery) -> list[ExperimentOut]:
    """Every stored experiment with its latest document."""
    with runtime().sessions() as session:
        return [queries.experiment_out(r) for r in queries.list_experiments(session, query.limit)]


@api.route("GET", "/api/experiments/<int:experiment_id>", summary="One experiment", role=Role.VIEWER,
           ok=(200, ExperimentOut), errors=(404, 503))
def get_experiment(experiment_id: int) -> ExperimentOut:
    """The experiment's latest version."""
    with runtime().sessions() as session:
        row = queries.get_experiment(session, experiment_id)
        if row is None:
            raise NotFound("experiment", str(experiment_id))
        return queries.experiment_out(row)


@api.route("PUT", "/api/experiments/<int:experiment_id>", summary="Save the next version of an experiment",
           role=Role.OPERATOR, body=ExperimentDocument, ok=(200, ExperimentOut), errors=(400, 404, 409, 422, 503))
def update_experiment(experiment_id: int, body: ExperimentDocument) -> ExperimentOut:
    """Version + 1; the earlier versions are kept."""
    return runtime().experiments.save(body, experiment_id)


@api.route("DELETE", "/api/experiments/<int:experiment_id>", summary="Delete an experiment (its runs stay)",
           role=Role.OPERATOR, ok=(200, DeletedOut), errors=(404, 409, 503))
def delete_experiment(experiment_id: int) -> DeletedOut:
    """Delete it and its versions; 409 while it runs."""
    runtime().experiments.delete(experiment_id)
    return DeletedOut(message=f"experiment {experiment_id} deleted", id=experiment_id)


@api.route("POST", "/api/experiments/<int:experiment_id>/run", summary="Run an experiment's current version",
           role=Role.OPERATOR, ok=(202, ExperimentRunOut), errors=(404, 409, 422, 503))
def run_experiment(experiment_id: int) -> ExperimentRunOut:
    """Start a run; 409 while an experiment or a load test runs."""
    return runtime().experiments.run(experiment_id)


@api.route("GET", "/api/experiment-runs", summary="Experiment runs, newest first", role=Role.VIEWER,
           query=ExperimentRunQuery, ok=(200, list[ExperimentRunOut]), errors=(400, 503))
def list_runs(query: ExperimentRunQuery) -> list[ExperimentRunOut]:
    """Runs (of one experiment with experimentId); the running one as it is now."""
    rt = runtime()
    with rt.sessions() as session:
        ids = [r.id for r in queries.list_runs(session, query.limit, query.experimentId)]
    return [rt.experiments.run_out(i) for i in ids]


@api.route("GET", "/api/experiment-runs/<int:run_id>", summary="One run: thresholds, probes, seconds, timeline",
           role=Role.VIEWER, ok=(200, ExperimentRunDetailOut), errors=(404, 503))
def run_detail(run_id: int) -> ExperimentRunDetailOut:
    """Live while it runs."""
    return runtime().experiments.run_detail(run_id)


@api.route("POST", "/api/experiment-runs/<int:run_id>/stop", summary="Stop a run (load stopped, faults ended)",
           role=Role.OPERATOR, ok=(200, ExperimentRunOut), errors=(404, 409, 503))
def stop_run(run_id: int) -> ExperimentRunOut:
    """Answers once it has ended (status stopped)."""
    return runtime().experiments.stop(run_id)


@api.route("GET", "/api/experiment-runs/<int:run_id>/report",
           summary="A run's report: HTML (attachment), or its JSON with Accept application/json",
           role=Role.VIEWER, query=ExperimentReportQuery, ok=(200, ExperimentRunDetailOut), errors=(400, 404, 503))
def report(run_id: int, query: ExperimentReportQuery) -> ExperimentRunDetailOut | Response:
    """?compare=<run id> adds the comparison with another run."""
    manager = runtime().experiments
    detail = manager.run_detail(run_id)
    if request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json":
        return detail
    other = None if query.compare is None else manager.run_detail(query.compare)
    return Response(render_html(detail, other), mimetype="text/html",
                    headers={"Content-Disposition": f"attachment; filename=experiment-run-{run_id}.html"})


@api.route("GET", "/api/experiment-runs/<int:run_id>/compare/<int:other_id>", summary="Two runs side by side",
           role=Role.VIEWER, ok=(200, ExperimentComparisonOut), errors=(404, 503))
def compare_runs(run_id: int, other_id: int) -> ExperimentComparisonOut:
    """Threshold by threshold (matched by expression), b - a."""
    manager = runtime().experiments
    return compare(manager.run_out(run_id), manager.run_out(other_id))
