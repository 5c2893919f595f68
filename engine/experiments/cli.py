"""`python -m engine experiment run FILE`: save an experiment by name through the API, run it, follow it, report.

Prints a line per second of load (phase, planned and sent, p95, each threshold), writes the HTML report (and the
JSON one with --json), and exits 0 on pass, 1 on fail, 2 when it could not run (the API's field errors printed).
FILE is JSON, or YAML when it ends in .yaml/.yml (PyYAML).
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any, TextIO

import httpx
from pydantic import ValidationError

from contract.experiments import ExperimentDocument

__all__ = ["EXIT_CANNOT_RUN", "EXIT_FAIL", "EXIT_PASS", "read_document", "run_file"]

EXIT_PASS, EXIT_FAIL, EXIT_CANNOT_RUN = 0, 1, 2
POLL_S = 1.0


class CannotRun(Exception):
    """The experiment could not be saved or started; the message says why."""


def read_document(path: Path) -> dict[str, Any]:
    """The document in FILE (JSON, or YAML by its suffix)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        yaml = importlib.import_module("yaml")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CannotRun(f"{path} is not YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CannotRun(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CannotRun(f"{path}: the document must be an object")
    return data


def _refusal(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    lines = [f"HTTP {response.status_code}: {body.get('error', '')}"]
    lines += [f"  {d.get('field')}: {d.get('message')}" for d in body.get("details") or []]
    return "\n".join(lines)


def _save(api: httpx.Client, document: dict[str, Any]) -> int:
    """The experiment's id: created, or updated when one of that name exists and differs."""
    listed = api.get("/api/experiments", params={"limit": 1000})
    if listed.status_code != 200:
        raise CannotRun(_refusal(listed))
    same = next((e for e in listed.json() if e["name"] == document.get("name")), None)
    if same is None:
        created = api.post("/api/experiments", json=document)
        if created.status_code != 201:
            raise CannotRun(_refusal(created))
        return int(created.json()["id"])
    try:
        if ExperimentDocument.model_validate(document).model_dump(mode="json") == same["document"]:
            return int(same["id"])  # unchanged: no new version
    except ValidationError:
        pass  # the API names what is wrong
    updated = api.put(f"/api/experiments/{same['id']}", json=document)
    if updated.status_code != 200:
        raise CannotRun(_refusal(updated))
    return int(same["id"])


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else "ok" if ok else "FAIL"


def _line(run: dict[str, Any], second: dict[str, Any]) -> str:
    p95 = "n/a" if second["p95"] is None else f"{second['p95']:.1f} ms"
    marks = "  ".join(f"{t['expression'].split(',')[0]}: {_mark(t['ok'])}" for t in run["thresholds"])
    return (f"[{run['phase']}] {second['second']:>4} s  planned {second['planned']:.0f}  sent {second['sent']}  "
            f"failed {second['failed']}  p95 {p95}  {marks}")


def run_file(path: Path, *, url: str, token: str | None, report: Path | None = None, json_out: Path | None = None,
             out: TextIO, poll_s: float = POLL_S) -> int:
    """Save, run and follow the experiment in FILE; the exit code."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        document = read_document(path)
        with httpx.Client(base_url=url, headers=headers, timeout=30, trust_env=False) as api:
            experiment_id = _save(api, document)
            started = api.post(f"/api/experiments/{experiment_id}/run")
            if started.status_code != 202:
                raise CannotRun(_refusal(started))
            run_id = int(started.json()["id"])
            print(f"experiment {document.get('name')} run {run_id} started", file=out, flush=True)
            run = _follow(api, run_id, out, poll_s)
            _write_reports(api, run_id, report or Path(f"experiment-run-{run_id}.html"), json_out, out)
    except (CannotRun, OSError, ValueError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=out, flush=True)
        return EXIT_CANNOT_RUN
    thresholds = "; ".join(f"{t['expression']}: {t['figure']} ({_mark(t['ok'])})" for t in run["thresholds"])
    print(f"{run['status']}: verdict {run['verdict']}" + (f" ({run['reason']})" if run["reason"] else ""), file=out)
    if thresholds:
        print(f"thresholds: {thresholds}", file=out, flush=True)
    return EXIT_PASS if run["verdict"] == "pass" else EXIT_FAIL


def _follow(api: httpx.Client, run_id: int, out: TextIO, poll_s: float) -> dict[str, Any]:
    """Poll the run, printing each new second, until it has ended; its final detail."""
    shown = 0
    try:
        while True:
            answer = api.get(f"/api/experiment-runs/{run_id}")
            if answer.status_code != 200:
                raise CannotRun(_refusal(answer))
            run: dict[str, Any] = answer.json()
            for second in run["seconds"][shown:]:
                print(_line(run, second), file=out, flush=True)
            shown = len(run["seconds"])
            if run["status"] != "running":
                return run
            time.sleep(poll_s)
    except KeyboardInterrupt:
        api.post(f"/api/experiment-runs/{run_id}/stop")
        raise


def _write_reports(api: httpx.Client, run_id: int, report: Path, json_out: Path | None, out: TextIO) -> None:
    page = api.get(f"/api/experiment-runs/{run_id}/report", headers={"Accept": "text/html"})
    if page.status_code != 200:
        raise CannotRun(_refusal(page))
    report.write_bytes(page.content)
    print(f"report written to {report}", file=out)
    if json_out is not None:
        detail = api.get(f"/api/experiment-runs/{run_id}/report", headers={"Accept": "application/json"})
        if detail.status_code != 200:
            raise CannotRun(_refusal(detail))
        json_out.write_text(json.dumps(detail.json(), indent=2), encoding="utf-8")
        print(f"JSON written to {json_out}", file=out)
