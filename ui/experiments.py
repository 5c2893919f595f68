"""The Experiments page's building blocks for a run: its status in words, the planned against achieved rate and the
latency charts (threshold lines, fault spans shaded), the thresholds as rows that turn green or red, the timeline,
the run history and the comparison of two runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from contract.experiments import (
    ExperimentComparisonOut,
    ExperimentEventKind,
    ExperimentEventOut,
    ExperimentRunDetailOut,
    ExperimentRunOut,
    ExperimentRunStatus,
    ThresholdResultOut,
)
from ui.charts import LEGEND_BELOW
from ui.format import NA

__all__ = [
    "FaultSpan",
    "comparison_frame",
    "elapsed_s",
    "event_frame",
    "fault_spans",
    "history_frame",
    "latency_chart",
    "outcome",
    "rate_chart",
    "result_style",
    "run_label",
    "status_label",
    "threshold_frame",
    "verdict_label",
]

STATUS_EMOJI = {"running": "🔵", "completed": "🟢", "halted": "🔴", "stopped": "🟠", "interrupted": "⚪",
                "failed": "🔴"}
PASS_COLOUR, FAIL_COLOUR = "rgba(33, 195, 84, 0.25)", "rgba(255, 75, 75, 0.25)"
LATENCY_METRICS = ("p50", "p95", "p99")  # the per-second latencies a run keeps
LATENCY_COLOURS = {"p50": "#3b82f6", "p95": "#f59e0b", "p99": "#ef4444"}
SECOND_AXIS = "second of the load"
_LAYOUT: dict[str, Any] = {"height": 320, "margin": {"l": 10, "r": 10, "t": 48, "b": 10}, "hovermode": "x unified",
                           "legend": LEGEND_BELOW, "uirevision": "live"}


def status_label(status: ExperimentRunStatus | str) -> str:
    """"🟢 completed"."""
    value = str(getattr(status, "value", status))
    return f"{STATUS_EMOJI.get(value, '⚪')} {value}"


def verdict_label(run: ExperimentRunOut) -> str:
    """"✅ pass", "❌ fail", or "n/a" while no verdict is known."""
    if run.verdict is None:
        return NA
    return "✅ pass" if run.verdict.value == "pass" else "❌ fail"


def outcome(ok: bool | None) -> str:
    """A threshold's or probe's state: "✅ pass", "❌ fail", "n/a" (not evaluated: nothing measured yet)."""
    return NA if ok is None else "✅ pass" if ok else "❌ fail"


def run_label(run: ExperimentRunOut) -> str:
    """One run in a selector, by what never changes: "#4 · orders-ramp v2 · started 12-01 10:00:00 UTC"."""
    return f"#{run.id} · {run.experimentName} v{run.version} · started {run.startedAt[5:19].replace('T', ' ')} UTC"


def elapsed_s(run: ExperimentRunOut, now: datetime) -> float:
    """Seconds from the run's start to its end, or to `now` while it runs."""
    end = datetime.fromisoformat(run.endedAt) if run.endedAt else now
    return max(0.0, (end - datetime.fromisoformat(run.startedAt)).total_seconds())


@dataclass(frozen=True)
class FaultSpan:
    """A fault as it happened, in seconds of the load: from its start event to its end (None: still active)."""

    start_s: float
    end_s: float | None
    title: str


def _fault_key(event: ExperimentEventOut) -> Any:
    """What pairs a fault's start and end events: the simulation, else the step's index, else the title."""
    for key in ("simulationId", "step"):
        if key in event.detail:
            return (key, event.detail[key])
    return ("title", event.title.split(":")[0])


def fault_spans(events: Sequence[ExperimentEventOut]) -> list[FaultSpan]:
    """The faults of a timeline as spans: each fault-start with the next fault-end of the same step; a fault that
    could not start (its event has an error) has none."""
    open_: dict[Any, ExperimentEventOut] = {}
    spans: list[FaultSpan] = []
    for e in sorted(events, key=lambda e: e.atS):
        if e.kind is ExperimentEventKind.FAULT_START and not e.detail.get("error"):
            open_[_fault_key(e)] = e
        elif e.kind is ExperimentEventKind.FAULT_END and (start := open_.pop(_fault_key(e), None)) is not None:
            spans.append(FaultSpan(start.atS, e.atS, start.title))
    spans.extend(FaultSpan(e.atS, None, e.title) for e in open_.values())
    return sorted(spans, key=lambda s: s.start_s)


def _shade(fig: Any, spans: Sequence[FaultSpan], last_s: float) -> None:
    for span in spans:
        fig.add_vrect(x0=span.start_s, x1=span.end_s if span.end_s is not None else last_s,
                      fillcolor="rgba(168, 85, 247, 0.15)", line_width=0, layer="below",
                      annotation_text=span.title, annotation_position="top left", annotation_font_size=10)


def _seconds(run: ExperimentRunDetailOut) -> pd.DataFrame:
    frame = pd.DataFrame([s.model_dump() for s in run.seconds],
                         columns=["second", "planned", "sent", "ok", "failed", "dropped", *LATENCY_METRICS,
                                  "errorRate"])
    return frame.astype({m: float for m in (*LATENCY_METRICS, "errorRate", "planned")})


def rate_chart(run: ExperimentRunDetailOut) -> Any:
    """Planned (the schedule's rate) against achieved (sent) requests per second, with the faults shaded."""
    seconds = _seconds(run)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=seconds["second"], y=seconds["sent"], name="sent (achieved)", mode="lines+markers",
                             marker={"size": 4}, line={"color": "#3b82f6"}, hovertemplate="%{y:,d} req/s"))
    fig.add_trace(go.Scatter(x=seconds["second"], y=seconds["failed"], name="failed", mode="lines",
                             line={"color": "#ef4444", "dash": "dot"}, hovertemplate="%{y:,d} req/s"))
    # drawn last, on top: where the schedule is held, the achieved line lies under it
    fig.add_trace(go.Scatter(x=seconds["second"], y=seconds["planned"], name="planned", mode="lines",
                             line={"color": "#9ca3af", "dash": "dash"}, hovertemplate="%{y:,.1f} req/s"))
    _shade(fig, fault_spans(run.events), float(seconds["second"].max()) if len(seconds) else 0.0)
    fig.update_layout(title={"text": "Planned vs achieved rate"}, xaxis_title=SECOND_AXIS,
                      yaxis_title="requests / s", yaxis_rangemode="tozero", xaxis_rangemode="tozero", **_LAYOUT)
    return fig


def latency_chart(run: ExperimentRunDetailOut) -> Any | None:
    """Corrected p50, p95 and p99 per second (a second without answers is a gap) with each latency threshold's value
    as a line in its percentile's colour, faults shaded; None while no second has a latency."""
    seconds = _seconds(run)
    if seconds.empty or not seconds[list(LATENCY_METRICS)].notna().any().any():
        return None
    fig = go.Figure()
    for metric in LATENCY_METRICS:
        fig.add_trace(go.Scatter(x=seconds["second"], y=seconds[metric], name=metric, mode="lines",
                                 connectgaps=False, line={"color": LATENCY_COLOURS[metric],
                                                          "width": 3 if metric == "p95" else 1.5},
                                 hovertemplate="%{y:,.1f} ms"))
    for t in run.document.thresholds:
        if t.metric.value in LATENCY_METRICS:
            fig.add_hline(y=t.value, line_dash="dash", line_color=LATENCY_COLOURS[t.metric.value],
                          annotation_text=f"{t.metric.value} {t.op.value} {t.value:g}",
                          annotation_position="top right")
    _shade(fig, fault_spans(run.events), float(seconds["second"].max()))
    fig.update_layout(title={"text": "Latency per second and thresholds"}, xaxis_title=SECOND_AXIS,
                      yaxis_title="ms", yaxis_rangemode="tozero", xaxis_rangemode="tozero", **_LAYOUT)
    return fig


THRESHOLD_TABLE_COLUMNS = ["threshold", "result", "figure", "failed at s", "halted the run"]


def threshold_frame(results: Sequence[ThresholdResultOut]) -> pd.DataFrame:
    """One row per threshold: its expression, pass/fail/n/a, the figure it was judged on, when it first failed."""
    return pd.DataFrame([[r.expression, outcome(r.ok), r.figure, r.failedAtS, r.aborted] for r in results],
                        columns=THRESHOLD_TABLE_COLUMNS).astype({"figure": float, "failed at s": float})


def result_style(value: Any) -> str:
    """The cell style of a result: green for a pass, red for a fail, none for n/a."""
    if value == outcome(True):
        return f"background-color: {PASS_COLOUR}"
    if value == outcome(False):
        return f"background-color: {FAIL_COLOUR}"
    return ""


def event_frame(events: Sequence[ExperimentEventOut]) -> pd.DataFrame:
    """The timeline as rows: seconds into the load (negative before it), kind, title."""
    return pd.DataFrame([[e.atS, e.kind.value, e.title] for e in events],
                        columns=["at s", "kind", "event"]).astype({"at s": float})


def history_frame(runs: Sequence[ExperimentRunOut]) -> pd.DataFrame:
    """Runs newest first: id, version, status, verdict, thresholds held of those evaluated, start, end, reason."""
    def held(r: ExperimentRunOut) -> str:
        judged = [t.ok for t in r.thresholds if t.ok is not None]
        return f"{sum(judged)} of {len(judged)}" if judged else NA
    return pd.DataFrame({
        "id": [r.id for r in runs],
        "version": [r.version for r in runs],
        "status": [status_label(r.status) for r in runs],
        "verdict": [verdict_label(r) for r in runs],
        "thresholds held": [held(r) for r in runs],
        "started": pd.to_datetime(pd.Index([r.startedAt for r in runs], dtype=object), utc=True),
        "ended": pd.to_datetime(pd.Index([r.endedAt for r in runs], dtype=object), utc=True),
        "reason": [r.reason for r in runs],
    })


def comparison_frame(c: ExperimentComparisonOut) -> pd.DataFrame:
    """Two runs threshold by threshold: each run's result and figure, and the change b - a (NaN when unknown)."""
    rows = [[t.expression, outcome(None if t.a is None else t.a.ok), None if t.a is None else t.a.figure,
             outcome(None if t.b is None else t.b.ok), None if t.b is None else t.b.figure, t.change]
            for t in c.thresholds]
    return pd.DataFrame(rows, columns=["threshold", f"#{c.a.id}", f"#{c.a.id} figure", f"#{c.b.id}",
                                       f"#{c.b.id} figure", "change"]).astype(
        {f"#{c.a.id} figure": float, f"#{c.b.id} figure": float, "change": float})
