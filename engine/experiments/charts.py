"""The report's figure: planned vs sent rate, corrected latency and errors on one axis of seconds into the load,
fault spans shaded and every other timeline event drawn as a line with its title."""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from contract.experiments import (
    ExperimentEventKind,
    ExperimentEventOut,
    ExperimentRunDetailOut,
    ThresholdMetric,
    threshold_text,
)

__all__ = ["EVENT_COLOURS", "fault_spans", "run_figure"]

_LATENCY = {ThresholdMetric.P50, ThresholdMetric.P90, ThresholdMetric.P95, ThresholdMetric.P99, ThresholdMetric.P999,
            ThresholdMetric.MAX, ThresholdMetric.MEAN}
_ROW = {ThresholdMetric.RPS: 1, ThresholdMetric.DROPPED: 1, ThresholdMetric.ERROR_RATE: 3}
EVENT_COLOURS = {
    ExperimentEventKind.PHASE: "#6b7280", ExperimentEventKind.STAGE: "#0ea5e9",
    ExperimentEventKind.SCALE: "#7c3aed", ExperimentEventKind.THRESHOLD: "#d97706",
    ExperimentEventKind.HALT: "#dc2626", ExperimentEventKind.BREAKER: "#be185d",
    ExperimentEventKind.ALERT: "#ea580c", ExperimentEventKind.HEALTH: "#059669",
    ExperimentEventKind.FAULT_START: "#ef4444", ExperimentEventKind.FAULT_END: "#ef4444",
}
_NOT_MARKED = {ExperimentEventKind.FAULT_START, ExperimentEventKind.FAULT_END, ExperimentEventKind.PHASE}
_TITLE_CHARS = 40


def _step(event: ExperimentEventOut) -> Any:
    """What pairs a fault's start and end: the step's index in the document when the event says so."""
    return event.detail.get("step", event.detail.get("index"))


def fault_spans(run: ExperimentRunDetailOut) -> list[tuple[float, float, str]]:
    """(start s, end s, title) of each fault; a fault without an end event lasts to the end of the load."""
    end_of_run = max([float(len(run.seconds)), *(e.atS for e in run.events)], default=0.0)
    open_spans: list[ExperimentEventOut] = []
    spans: list[tuple[float, float, str]] = []
    for event in sorted(run.events, key=lambda e: e.atS):
        if event.kind is ExperimentEventKind.FAULT_START:
            open_spans.append(event)
        elif event.kind is ExperimentEventKind.FAULT_END:
            start = next((s for s in open_spans if _step(s) == _step(event)), open_spans[0] if open_spans else None)
            if start is not None:
                open_spans.remove(start)
                spans.append((start.atS, event.atS, start.title))
    spans.extend((s.atS, end_of_run, s.title) for s in open_spans)
    return sorted(spans)


def _short(title: str) -> str:
    text = title if len(title) <= _TITLE_CHARS else title[: _TITLE_CHARS - 1] + "…"
    return html.escape(text)  # plotly renders a subset of HTML in text: titles are shown as written


def run_figure(run: ExperimentRunDetailOut) -> go.Figure:
    """Three rows sharing x (seconds of load, each second drawn at its end): rate, latency, errors."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("requests/s", "corrected latency (ms)", "failed requests"),
                        specs=[[{}], [{}], [{"secondary_y": True}]])
    x = [s.second + 1 for s in run.seconds]
    fig.add_trace(go.Scatter(x=x, y=[s.planned for s in run.seconds], name="planned", line={"dash": "dash"}),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=[s.sent for s in run.seconds], name="sent"), row=1, col=1)
    fig.add_trace(go.Bar(x=x, y=[s.dropped for s in run.seconds], name="dropped", marker_color="#f59e0b",
                         opacity=0.6), row=1, col=1)
    for name in ("p50", "p95", "p99"):
        fig.add_trace(go.Scatter(x=x, y=[getattr(s, name) for s in run.seconds], name=name, connectgaps=False),
                      row=2, col=1)
    fig.add_trace(go.Bar(x=x, y=[s.failed for s in run.seconds], name="failed", marker_color="#dc2626",
                         opacity=0.6), row=3, col=1)
    fig.add_trace(go.Scatter(x=x, y=[s.errorRate for s in run.seconds], name="error rate %",
                             line={"color": "#7f1d1d"}), row=3, col=1, secondary_y=True)
    for t in run.document.thresholds:
        row = 2 if t.metric in _LATENCY else _ROW.get(t.metric)
        if row is None:
            continue
        fig.add_hline(y=t.value, row=row, col=1, secondary_y=True if row == 3 else None,
                      line={"color": "#d97706", "dash": "dot", "width": 1},
                      annotation_text=_short(threshold_text(t)), annotation_position="top left",
                      annotation_font={"size": 10, "color": "#92400e"})
    _draw_events(fig, run)
    fig.update_xaxes(title_text="seconds of load", row=3, col=1)
    fig.update_yaxes(title_text="%", row=3, col=1, secondary_y=True, rangemode="tozero")
    fig.update_layout(height=860, margin={"l": 60, "r": 30, "t": 60, "b": 50}, barmode="overlay",
                      legend={"orientation": "h", "y": -0.08}, hovermode="x unified", template="plotly_white")
    return fig


def _draw_events(fig: go.Figure, run: ExperimentRunDetailOut) -> None:
    """Fault spans as shaded bands over all rows; each event of the load (phases aside: the axis is the load) as a
    vertical line with its title on top."""
    for start, end, title in fault_spans(run):
        fig.add_shape(type="rect", xref="x", yref="paper", x0=start, x1=end, y0=0, y1=1, layer="below",
                      fillcolor="#fecaca", opacity=0.45, line={"width": 0}, name=f"fault: {_short(title)}")
        fig.add_annotation(x=start, xref="x", y=1.0, yref="paper", yanchor="bottom", xanchor="left",
                           showarrow=False, text=f"fault: {_short(title)}", font={"size": 10, "color": "#991b1b"})
    marks = [e for e in run.events if e.kind not in _NOT_MARKED and e.atS >= 0]
    for n, event in enumerate(marks):
        colour = EVENT_COLOURS.get(event.kind, "#374151")
        label = f"{event.kind.value}: {_short(event.title)}"
        fig.add_shape(type="line", xref="x", yref="paper", x0=event.atS, x1=event.atS, y0=0, y1=1, name=label,
                      line={"color": colour, "width": 1.5, "dash": "dash"})
        fig.add_annotation(x=event.atS, xref="x", y=0.985 - 0.035 * (n % 4), yref="paper", xanchor="left",
                           showarrow=False, text=label, font={"size": 10, "color": colour},
                           bgcolor="rgba(255,255,255,0.7)")
