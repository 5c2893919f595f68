"""The experiments part of the engine's API client: stored experiments, their runs (live while running), reports and
the comparison of two runs. ui.client.ApiClient inherits these calls and supplies the transport."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from contract.experiments import (
    ExperimentComparisonOut,
    ExperimentDocument,
    ExperimentOut,
    ExperimentRunDetailOut,
    ExperimentRunOut,
)
from contract.responses import DeletedOut

__all__ = ["HTML", "JSON", "ExperimentCalls"]

M = TypeVar("M", bound=BaseModel)
HTML = "text/html"
JSON = "application/json"


def _document(document: ExperimentDocument | Mapping[str, Any]) -> Mapping[str, Any]:
    """A document as the API takes it: a model as its JSON (unset optional fields left out), a dict as it is (the
    API names what is wrong with it)."""
    if isinstance(document, ExperimentDocument):
        dumped: dict[str, Any] = document.model_dump(mode="json", exclude_none=True)
        return dumped
    return document


class ExperimentCalls:
    """The experiment calls of ui.client.ApiClient (which defines _call, _list and text)."""

    if TYPE_CHECKING:
        def _call(self, model: type[M], method: str, path: str, body: Mapping[str, Any] | None = None,
                  accept: tuple[int, ...] = (), params: Mapping[str, Any] | None = None) -> M: ...

        def _list(self, model: type[M], method: str, path: str,
                  params: Mapping[str, Any] | None = None) -> list[M]: ...

        def text(self, path: str, params: Mapping[str, Any] | None = None, accept: str | None = None) -> str: ...

    def experiments(self, limit: int = 100) -> list[ExperimentOut]:
        """GET /api/experiments: the stored experiments with their latest documents."""
        return self._list(ExperimentOut, "GET", "/api/experiments", {"limit": limit})

    def experiment(self, experiment_id: int) -> ExperimentOut:
        """GET /api/experiments/<id>; 404 unknown."""
        return self._call(ExperimentOut, "GET", f"/api/experiments/{int(experiment_id)}")

    def create_experiment(self, document: ExperimentDocument | Mapping[str, Any]) -> ExperimentOut:
        """POST /api/experiments: the stored experiment, version 1 (201); 422 names each bad field."""
        return self._call(ExperimentOut, "POST", "/api/experiments", _document(document))

    def update_experiment(self, experiment_id: int,
                          document: ExperimentDocument | Mapping[str, Any]) -> ExperimentOut:
        """PUT /api/experiments/<id>: the experiment with its version one higher (the previous one is kept)."""
        return self._call(ExperimentOut, "PUT", f"/api/experiments/{int(experiment_id)}", _document(document))

    def delete_experiment(self, experiment_id: int) -> DeletedOut:
        """DELETE /api/experiments/<id>; 409 while it runs."""
        return self._call(DeletedOut, "DELETE", f"/api/experiments/{int(experiment_id)}")

    def run_experiment(self, experiment_id: int) -> ExperimentRunOut:
        """POST /api/experiments/<id>/run: the new run (202); 409 while a run or a load test is running."""
        return self._call(ExperimentRunOut, "POST", f"/api/experiments/{int(experiment_id)}/run")

    def experiment_runs(self, experiment_id: int | None = None, limit: int = 50) -> list[ExperimentRunOut]:
        """GET /api/experiment-runs: runs newest first, of one experiment or of all."""
        return self._list(ExperimentRunOut, "GET", "/api/experiment-runs",
                          {"limit": limit, "experimentId": experiment_id})

    def experiment_run(self, run_id: int) -> ExperimentRunDetailOut:
        """GET /api/experiment-runs/<id>: the run with its document, seconds and timeline (live while running)."""
        return self._call(ExperimentRunDetailOut, "GET", f"/api/experiment-runs/{int(run_id)}")

    def stop_experiment_run(self, run_id: int) -> ExperimentRunOut:
        """POST /api/experiment-runs/<id>/stop: the run, stopped; 409 when it is not running."""
        return self._call(ExperimentRunOut, "POST", f"/api/experiment-runs/{int(run_id)}/stop")

    def experiment_report(self, run_id: int, media_type: str = HTML, compare: int | None = None) -> str:
        """GET /api/experiment-runs/<id>/report as HTML (`compare`: with the comparison to that run) or JSON."""
        return self.text(f"/api/experiment-runs/{int(run_id)}/report", {"compare": compare}, accept=media_type)

    def compare_experiment_runs(self, a: int, b: int) -> ExperimentComparisonOut:
        """GET /api/experiment-runs/<a>/compare/<b>: the two runs threshold by threshold."""
        return self._call(ExperimentComparisonOut, "GET", f"/api/experiment-runs/{int(a)}/compare/{int(b)}")
