"""The experiment editor's model: a document (a JSON value, valid or not) split into what the form edits (plain
fields and tables), the form's values written back into the document, the starter document for the demo fleet, and
the document's problems named by field path as contract.experiments.ExperimentDocument finds them."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pydantic import TypeAdapter, ValidationError

from contract.experiments import ExperimentDocument, Threshold

__all__ = [
    "PROBE_COLUMNS",
    "STAGE_COLUMNS",
    "STEP_COLUMNS",
    "STEP_KINDS",
    "THRESHOLD_COLUMNS",
    "FormParts",
    "apply_form",
    "dump",
    "form_parts",
    "headers_text",
    "parse_headers",
    "problems",
    "starter",
]

STAGE_COLUMNS = ["durationS", "targetRps"]
# one row per fault or scaling step; a column only means something for the kinds named in STEP_FIELDS
STEP_COLUMNS = ["kind", "atS", "durationS", "service", "scaleTo", "latencyMs", "jitterMs", "probability",
                "statusCode", "mode", "intensity", "leakMBs"]
STEP_KINDS = ["network-latency", "service-failure", "database-overload", "memory-leak", "scale"]
THRESHOLD_COLUMNS = ["metric", "op", "value", "windowS", "abortOnFail", "delayS"]
PROBE_COLUMNS = ["kind", "service", "p95BelowMs", "requests", "path"]
# table column -> where it goes in a step of each kind ("params.x" inside params)
STEP_FIELDS: dict[str, dict[str, str]] = {
    "network-latency": {"atS": "atS", "durationS": "durationS", "service": "params.serviceName",
                        "latencyMs": "params.latency", "jitterMs": "params.jitter",
                        "probability": "params.probability"},
    "service-failure": {"atS": "atS", "durationS": "durationS", "service": "params.serviceName",
                        "probability": "params.probability", "statusCode": "params.statusCode",
                        "mode": "params.mode"},
    "database-overload": {"atS": "atS", "durationS": "durationS", "intensity": "params.intensity"},
    "memory-leak": {"atS": "atS", "durationS": "durationS", "leakMBs": "params.rate"},
    "scale": {"atS": "atS", "service": "service", "scaleTo": "scaleTo"},
}
INTEGER_FIELDS = {"scaleTo", "statusCode", "windowS", "requests", "users"}
_THRESHOLD = TypeAdapter(Threshold)


def starter(service: str = "orders") -> dict[str, Any]:
    """A document that runs at once on the demo fleet: `service` from 50 to 400 and back to 50 req/s over 60 s,
    p95 under 200 ms, the service healthy before and after."""
    return {
        "name": f"{service}-ramp",
        "description": f"Ramp {service} from 50 to 400 req/s and back to 50 over 60 s; p95 must stay under 200 ms.",
        "load": {"service": service, "startRps": 50,
                 "stages": [{"durationS": 30, "targetRps": 400}, {"durationS": 30, "targetRps": 50}],
                 "users": 200, "requests": [{"method": "GET", "path": "/work?ms=20"}]},
        "faults": [],
        "thresholds": [{"metric": "p95", "op": "<", "value": 200}],
        "steadyState": [{"kind": "healthy"}],
    }


def dump(document: Any) -> str:
    """A document as the raw editor shows it: indented JSON, keys in the order written."""
    return json.dumps(document, indent=2, ensure_ascii=False)


def problems(document: Any) -> list[str]:
    """What ExperimentDocument finds wrong, one line each: "load.stages.0.durationS: Input should be greater than 0";
    [] for a valid document."""
    try:
        ExperimentDocument.model_validate(document)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}" for e in exc.errors()]
    return []


# -- reading a document leniently: a field of the wrong type shows as empty, the problems list says why -----------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _get(d: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        d = _dict(d).get(part)  # type: ignore[assignment]
    return d


def _requests(load: Mapping[str, Any]) -> list[Any]:
    raw = load.get("requests")
    return [raw] if isinstance(raw, dict) else _list(raw)


def headers_text(headers: Any) -> str:
    """Request headers as the form's text: one "Name: value" a line."""
    return "\n".join(f"{k}: {v}" for k, v in _dict(headers).items())


def parse_headers(text: str) -> dict[str, str]:
    """The form's header text as a dict: "Name: value" a line, blank lines skipped; a line without a colon is a name
    with an empty value (the contract then says what is wrong with it)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            name, _, value = line.partition(":")
            out[name.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class FormParts:
    """What the form edits of a document: the plain fields, the first request of the rotation, and four tables."""

    name: str
    description: str
    service: str | None
    start_rps: float | None
    users: int | None
    method: str
    path: str
    headers: str
    body: str
    stages: pd.DataFrame
    steps: pd.DataFrame
    thresholds: pd.DataFrame
    probes: pd.DataFrame


def _step_row(step: Any) -> dict[str, Any]:
    s = _dict(step)
    kind = "scale" if "scaleTo" in s else _text(s.get("kind"))
    row: dict[str, Any] = dict.fromkeys(STEP_COLUMNS)
    row["kind"] = kind
    for column, where in STEP_FIELDS.get(kind or "", {"atS": "atS", "durationS": "durationS"}).items():
        value = _get(s, where)
        row[column] = value if isinstance(value, str) and column in ("service", "mode", "intensity") else _number(value)
    return row


def _threshold_row(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):  # the short form "p95 < 200": read as the contract reads it
        try:
            raw = _THRESHOLD.validate_python(raw).model_dump(mode="json")
        except ValidationError:
            raw = {}
    t = _dict(raw)
    return {"metric": _text(t.get("metric")), "op": _text(t.get("op")), "value": _number(t.get("value")),
            "windowS": _number(t.get("windowS")), "abortOnFail": t.get("abortOnFail") is True,
            "delayS": _number(t.get("delayS"))}


def _probe_row(raw: Any) -> dict[str, Any]:
    p = _dict(raw)
    return {"kind": _text(p.get("kind")), "service": _text(p.get("service")),
            "p95BelowMs": _number(p.get("p95BelowMs")), "requests": _number(p.get("requests")),
            "path": _text(p.get("path"))}


def _frame(rows: list[dict[str, Any]], columns: list[str], numbers: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    for column in columns:
        frame[column] = frame[column].astype(float if column in numbers else object)
    return frame


def form_parts(document: Any) -> FormParts:
    """The form's values for a document; what is missing or of the wrong type is empty (None)."""
    doc = _dict(document)
    load = _dict(doc.get("load"))
    requests = _requests(load)
    first = _dict(requests[0]) if requests else {}
    users = _number(load.get("users"))
    step_numbers = [c for c in STEP_COLUMNS if c not in ("kind", "service", "mode", "intensity")]
    return FormParts(
        name=_text(doc.get("name")) or "",
        description=_text(doc.get("description")) or "",
        service=_text(load.get("service")),
        start_rps=_number(load.get("startRps")),
        users=None if users is None else int(users),
        method=_text(first.get("method")) or "GET",
        path=_text(first.get("path")) or "/",
        headers=headers_text(first.get("headers")),
        body=_text(first.get("body")) or "",
        stages=_frame([{c: _number(_dict(s).get(c)) for c in STAGE_COLUMNS} for s in _list(load.get("stages"))],
                      STAGE_COLUMNS, STAGE_COLUMNS),
        steps=_frame([_step_row(s) for s in _list(doc.get("faults"))], STEP_COLUMNS, step_numbers),
        thresholds=_frame([_threshold_row(t) for t in _list(doc.get("thresholds"))], THRESHOLD_COLUMNS,
                          ["value", "windowS", "delayS"]),
        probes=_frame([_probe_row(p) for p in _list(doc.get("steadyState"))], PROBE_COLUMNS,
                      ["p95BelowMs", "requests"]),
    )


# -- writing the form's values into a document ------------------------------------------------------------------


def _value(column: str, value: Any) -> Any:
    """A table cell as JSON: None for empty (NaN, None, ""), whole numbers as ints."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value.item() if hasattr(value, "item") else value
    number = float(value)
    return int(number) if number.is_integer() else number


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The table's rows as dicts of set cells; a row with no cell set is dropped (a blank row being added)."""
    rows = []
    for record in frame.to_dict("records"):
        row = {str(k): _value(str(k), v) for k, v in record.items()}
        if any(v is not None and v is not False for v in row.values()):
            rows.append({k: v for k, v in row.items() if v is not None})
    return rows


def _put(target: dict[str, Any], dotted: str, value: Any) -> None:
    head, _, rest = dotted.partition(".")
    if rest:
        _put(target.setdefault(head, {}), rest, value)
    else:
        target[head] = value


def _step(row: Mapping[str, Any]) -> dict[str, Any]:
    kind = row.get("kind")
    step: dict[str, Any] = {} if kind == "scale" or kind is None else {"kind": kind}
    for column, where in STEP_FIELDS.get(str(kind), {"atS": "atS", "durationS": "durationS"}).items():
        if column in row:
            _put(step, where, row[column])
    return step


def _threshold(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in ("metric", "op", "value", "windowS") if k in row}
    if row.get("abortOnFail"):
        out["abortOnFail"] = True
        if row.get("delayS"):
            out["delayS"] = row["delayS"]
    return out


def apply_form(document: Any, parts: FormParts) -> dict[str, Any]:
    """`document` with what the form edits replaced by the form's values; everything else (the rotation's other
    requests, the route key, unknown fields the contract will name) kept as it is."""
    doc = copy.deepcopy(_dict(document))
    doc["name"] = parts.name
    if parts.description or "description" in doc:
        doc["description"] = parts.description
    load = _dict(doc.get("load"))
    doc["load"] = load
    for key, value in (("service", parts.service), ("startRps", _value("startRps", parts.start_rps)),
                       ("users", _value("users", parts.users))):
        if value is None:
            load.pop(key, None)
        else:
            load[key] = value
    load["stages"] = _rows(parts.stages)
    requests = _requests(load)
    first: dict[str, Any] = dict(_dict(requests[0])) if requests else {}
    first.update({"method": parts.method, "path": parts.path})
    for key, value in (("headers", parse_headers(parts.headers)), ("body", parts.body)):
        if value:
            first[key] = value
        else:
            first.pop(key, None)
    load["requests"] = [first, *requests[1:]]
    doc["faults"] = [_step(r) for r in _rows(parts.steps)]
    doc["thresholds"] = [_threshold(r) for r in _rows(parts.thresholds)]
    doc["steadyState"] = _rows(parts.probes)
    return doc
