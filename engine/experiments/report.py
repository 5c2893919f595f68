"""A run as one self-contained HTML file: verdict, thresholds, steady state, charts, timeline, the document and, with
a second run, the comparison. It opens offline: plotly.js, styles and data are inline; nothing is fetched."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence

import plotly.io as pio
from plotly.offline import get_plotlyjs

from contract.experiments import (
    ExperimentComparisonOut,
    ExperimentRunDetailOut,
    ProbeResultOut,
    ThresholdMetric,
    Verdict,
)
from engine.experiments.charts import run_figure
from engine.experiments.compare import compare

__all__ = ["render_html"]

_UNIT = {ThresholdMetric.ERROR_RATE: " %", ThresholdMetric.AVAILABILITY: " %", ThresholdMetric.DROPPED: "",
         ThresholdMetric.RPS: " /s"}
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1280px;color:#111827;
padding:0 16px}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #e5e7eb}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{text-align:left;padding:4px 8px;
border-bottom:1px solid #e5e7eb;vertical-align:top}th{background:#f9fafb}td.n{text-align:right;
font-variant-numeric:tabular-nums}
.verdict{display:inline-block;font-size:1.8rem;font-weight:700;padding:4px 18px;border-radius:6px;color:#fff}
.pass{background:#16a34a}.fail{background:#dc2626}.none{background:#6b7280}
.ok{color:#15803d;font-weight:600}.bad{color:#b91c1c;font-weight:600}.na{color:#6b7280}
.meta{color:#374151}.reason{font-size:1.1rem;margin:.5rem 0}pre{background:#f9fafb;padding:12px;overflow:auto;
font-size:.8rem;border:1px solid #e5e7eb}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, unit: str = "") -> str:
    """A figure as shown: up to 3 decimals, 'n/a' when unknown."""
    if value is None:
        return '<span class="na">n/a</span>'
    text = f"{value:,.3f}".rstrip("0").rstrip(".")
    return _e(text + unit)


def _ok(ok: bool | None) -> str:
    if ok is None:
        return '<span class="na">n/a</span>'
    return '<span class="ok">ok</span>' if ok else '<span class="bad">failed</span>'


def _unit(metric: ThresholdMetric) -> str:
    return _UNIT.get(metric, " ms")


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()) -> str:
    """Rows of already-escaped cells; the columns in `numeric` right-aligned."""
    right = set(numeric)
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in right else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class="na">none</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _json_script(element_id: str, text: str) -> str:
    """JSON in a script block the page never runs; <, > and & escaped so no string in it can close the block."""
    safe = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return f'<script type="application/json" id="{element_id}">{safe}</script>'


def _header(run: ExperimentRunDetailOut) -> str:
    verdict = run.verdict.value.upper() if run.verdict is not None else "NO VERDICT"
    css = "none" if run.verdict is None else ("pass" if run.verdict is Verdict.PASS else "fail")
    reason = f'<p class="reason">{_e(run.reason)}</p>' if run.reason else ""
    description = f"<p>{_e(run.document.description)}</p>" if run.document.description else ""
    return (f"<header><h1>{_e(run.experimentName)} <small>v{run.version}</small></h1>"
            f'<div class="verdict {css}" id="verdict">{_e(verdict)}</div> '
            f'<span class="meta">status <b id="status">{_e(run.status.value)}</b>, phase {_e(run.phase.value)}, '
            f"run {run.id}</span>{reason}"
            f'<p class="meta">started {_e(run.startedAt)}, ended {_e(run.endedAt or "n/a")}; '
            f"{len(run.seconds)} s of load on {_e(run.document.load.service)}</p>{description}</header>")


def _thresholds(run: ExperimentRunDetailOut) -> str:
    rows = [(_e(r.expression), _num(r.figure, _unit(r.metric)), _ok(r.ok),
             _num(r.failedAtS, " s"), "yes" if r.aborted else "") for r in run.thresholds]
    return "<h2>Thresholds</h2>" + _table(("threshold", "figure", "result", "failed at", "halted the run"), rows,
                                          numeric=(1, 3))


def _probe_cells(probe: ProbeResultOut | None) -> list[str]:
    if probe is None:
        return ['<span class="na">n/a</span>', "", ""]
    return [_ok(probe.ok), _num(probe.figure, " ms"), _e(probe.detail)]


def _steady(run: ExperimentRunDetailOut) -> str:
    by_phase = {(p.phase, p.index): p for p in run.steadyState}
    indices = sorted({p.index for p in run.steadyState})
    rows = []
    for index in indices:
        probe = by_phase.get(("before", index)) or by_phase[("after", index)]
        rows.append([_e(f"{probe.kind.value} {probe.service}"), *_probe_cells(by_phase.get(("before", index))),
                     *_probe_cells(by_phase.get(("after", index)))])
    return "<h2>Steady state</h2>" + _table(("probe", "before", "p95", "detail", "after", "p95", "detail"), rows,
                                            numeric=(2, 5))


def _timeline(run: ExperimentRunDetailOut) -> str:
    rows = [(_e(e.at), _num(e.atS, " s"), _e(e.kind.value), _e(e.title),
             _e(json.dumps(e.detail, sort_keys=True)) if e.detail else "")
            for e in sorted(run.events, key=lambda e: e.atS)]
    return "<h2>Timeline</h2>" + _table(("at", "into the load", "kind", "event", "detail"), rows, numeric=(1,))


def _comparison(comparison: ExperimentComparisonOut) -> str:
    a, b = comparison.a, comparison.b

    def side(label: str, run_id: int, verdict: Verdict | None, started: str) -> str:
        shown = verdict.value if verdict else "no verdict"
        return f"<li>{label}: run {run_id}, {_e(shown)}, started {_e(started)}</li>"

    rows = []
    for row in comparison.thresholds:
        either = row.a or row.b
        unit = _unit(either.metric) if either is not None else ""
        rows.append((_e(row.expression),
                     _num(row.a.figure, unit) if row.a else "—", _ok(row.a.ok) if row.a else "—",
                     _num(row.b.figure, unit) if row.b else "—", _ok(row.b.ok) if row.b else "—",
                     _num(row.change, unit) if row.change is not None else _num(None)))
    return ('<h2 id="comparison">Comparison</h2><ul>' + side("a", a.id, a.verdict, a.startedAt)
            + side("b", b.id, b.verdict, b.startedAt) + "</ul>"
            + _table(("threshold", "a", "a result", "b", "b result", "change (b - a)"), rows, numeric=(1, 3, 5)))


def render_html(run: ExperimentRunDetailOut, other: ExperimentRunDetailOut | None = None) -> str:
    """The report of `run`: one HTML document with everything inline. With `other`, a comparison section in which
    `other` is a and `run` is b (the change is run's figure minus other's)."""
    figure = pio.to_json(run_figure(run), validate=False)
    config = json.dumps({"displaylogo": False, "responsive": True, "showSendToCloud": False})
    sections = [
        _header(run),
        _thresholds(run),
        _steady(run),
        '<h2>Load, latency and errors</h2><div id="charts" style="height:860px"></div>',
        _timeline(run),
        _comparison(compare(other, run)) if other is not None else "",
        f"<h2>Document</h2><pre>{_e(run.document.model_dump_json(indent=2, exclude_none=True))}</pre>",
    ]
    title = f"{run.experimentName} v{run.version}, run {run.id}: {run.verdict.value if run.verdict else 'no verdict'}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        + "".join(sections)
        + _json_script("run", run.model_dump_json())
        + _json_script("figure", figure)
        + "<script>(function(){var f=JSON.parse(document.getElementById('figure').textContent);"
        f"Plotly.newPlot('charts',f.data,f.layout,{config});}})();</script></body></html>\n"
    )
