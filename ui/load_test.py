"""The Load Test page's building blocks: a stored run in the API's status model, its whole-run tables, and the
per-second charts built from db.queries.load_test_samples_frame (one row per second of a run)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from contract.loadtest import LatencyPairOut, LoadStage, LoadTestOut
from db.loadtests import load_test_out
from db.models import LoadTest
from ui.charts import LEGEND_BELOW

__all__ = [
    "error_table",
    "latency_table",
    "load_test_errors",
    "load_test_latency",
    "load_test_overlay",
    "load_test_rate",
    "stored_run",
]


def stored_run(row: LoadTest) -> LoadTestOut:
    """A stored run in GET /api/load-test/status's model; what the row does not hold is None."""
    return load_test_out(row)


# whole-run latency figures of a status `latency`: API name -> row label, in the order the table shows them
LATENCY_FIGURES = {"p50": "p50", "p90": "p90", "p95": "p95", "p99": "p99", "p999": "p99.9", "max": "max",
                   "mean": "mean"}


def latency_table(latency: LatencyPairOut | None) -> pd.DataFrame:
    """A status `latency` as rows p50 … max, mean and columns corrected / uncorrected (ms; NaN when unknown)."""
    return pd.DataFrame({
        "figure": list(LATENCY_FIGURES.values()),
        "corrected ms": [None if latency is None else getattr(latency.corrected, k) for k in LATENCY_FIGURES],
        "uncorrected ms": [None if latency is None else getattr(latency.uncorrected, k) for k in LATENCY_FIGURES],
    }).astype({"corrected ms": float, "uncorrected ms": float})


def error_table(errors: Mapping[str, int] | None, answered: int | None) -> pd.DataFrame:
    """Failed requests by kind, most first, with their share % of the answered requests (NaN with none answered)."""
    pairs = sorted((errors or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    frame = pd.DataFrame(pairs, columns=["kind", "requests"]).astype({"requests": int})
    frame["share %"] = [100.0 * n / answered if answered else math.nan for n in frame["requests"]]
    return frame.astype({"share %": float})


PERCENTILE_COLOURS = {"p50": "#3b82f6", "p90": "#14b8a6", "p95": "#f59e0b", "p99": "#ef4444", "p999": "#a855f7",
                      "max": "#6b7280"}
_LAYOUT: dict[str, Any] = {
    "height": 320,
    "margin": {"l": 10, "r": 10, "t": 48, "b": 10},
    "hovermode": "x unified",
    "legend": LEGEND_BELOW,
    "uirevision": "live",
}
SECOND_AXIS = "second of the run"


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as floats, NaN where unknown (NULL percentiles of a second with no answer)."""
    if column not in frame:
        return pd.Series([float("nan")] * len(frame), index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def _scheduled(samples: pd.DataFrame) -> pd.DataFrame:
    """The seconds up to the last one that sent or dropped a request: after it only answers to earlier requests
    arrive (the drain), and a sent count of 0 there is not a collapse of the rate."""
    active = samples.index[(samples["sent"] + samples["dropped"]) > 0]
    return samples.loc[: active[-1]] if len(active) else samples.iloc[0:0]


def load_test_rate(samples: pd.DataFrame, requested_rps: float | None, duration_s: float | None,
                   stages: Sequence[LoadStage] | None = None, start_rps: float | None = None) -> Any | None:
    """Requests sent per second (the achieved rate) and answered OK per second against the requested rate.

    The requested rate is a dashed line over the run's duration (through each stage's target when the rate was
    staged); the drain seconds after the last send have no sent point. None when there are no samples yet.
    """
    if samples.empty:
        return None
    fig = go.Figure()
    if stages:
        xs, ys = [0.0], [start_rps or 0.0]
        for stage in stages:
            xs.append(xs[-1] + stage.durationS)
            ys.append(stage.targetRps)
        fig.add_trace(go.Scatter(x=xs, y=ys, name="requested", mode="lines",
                                 line={"color": "#6b7280", "dash": "dash"}, hovertemplate="%{y:,.1f} req/s"))
    elif requested_rps is not None:
        end = duration_s if duration_s is not None else float(samples["second"].max())
        fig.add_trace(go.Scatter(x=[0, end], y=[requested_rps, requested_rps], name="requested", mode="lines",
                                 line={"color": "#6b7280", "dash": "dash"}, hovertemplate="%{y:,.1f} req/s"))
    sending = _scheduled(samples)
    fig.add_trace(go.Scatter(x=sending["second"], y=sending["sent"], name="sent (achieved)", mode="lines+markers",
                             marker={"size": 4}, line={"color": "#3b82f6"}, hovertemplate="%{y:,d} req/s"))
    fig.add_trace(go.Scatter(x=samples["second"], y=samples["ok"], name="answered OK", mode="lines",
                             line={"color": "#21c354", "dash": "dot"}, hovertemplate="%{y:,d} req/s"))
    fig.update_layout(title={"text": "Achieved vs requested rate"}, xaxis_title=SECOND_AXIS,
                      yaxis_title="requests / s", yaxis_rangemode="tozero", xaxis_rangemode="tozero", **_LAYOUT)
    return fig


def load_test_latency(samples: pd.DataFrame, percentiles: tuple[str, ...] = ("p50", "p95", "p99"),
                      uncorrected: bool = True) -> Any | None:
    """Per-second latency percentiles: corrected (from the scheduled time) solid, uncorrected dashed in the same
    colour. A second without an answer is a gap; None when no second has a latency."""
    if samples.empty:
        return None
    fig = go.Figure()
    kinds = ("corrected", "uncorrected") if uncorrected else ("corrected",)
    for kind in kinds:
        for p in percentiles:
            y = _numbers(samples, f"{kind}_{p}_ms")
            if not y.notna().any():
                continue
            fig.add_trace(go.Scatter(
                x=samples["second"], y=y, name=f"{p} {kind}", mode="lines", connectgaps=False,
                line={"color": PERCENTILE_COLOURS.get(p), "dash": "solid" if kind == "corrected" else "dash",
                      "width": 2 if kind == "corrected" else 1.5},
                hovertemplate="%{y:,.1f} ms",
            ))
    if not fig.data:
        return None
    fig.update_layout(title={"text": "Latency percentiles per second"}, xaxis_title=SECOND_AXIS,
                      yaxis_title="ms", yaxis_rangemode="tozero", xaxis_rangemode="tozero", **_LAYOUT)
    return fig


def _error_kinds(samples: pd.DataFrame) -> pd.DataFrame:
    """Failed requests per second by kind (from the `errors` JSON text); a remainder with no kind is "failed"."""
    rows = [json.loads(e) if isinstance(e, str) and e else {} for e in samples.get("errors", [""] * len(samples))]
    kinds = pd.DataFrame(rows, index=samples.index, dtype=float).fillna(0.0)
    rest = samples["failed"].astype(float) - kinds.sum(axis=1)
    if (rest > 0).any():
        kinds["failed"] = rest.clip(lower=0.0)
    return kinds[sorted(kinds.columns)].astype(int)


def load_test_errors(samples: pd.DataFrame) -> Any | None:
    """Failed requests per second, a stacked bar per error kind, and dropped requests (never sent: no slot or
    backlog room) in their own colour; None when there are no samples."""
    if samples.empty:
        return None
    fig = go.Figure()
    kinds = _error_kinds(samples)
    if kinds.columns.empty:
        kinds["failed"] = 0
    for kind in kinds.columns:
        fig.add_trace(go.Bar(x=samples["second"], y=kinds[kind].tolist(), name=str(kind),
                             hovertemplate="%{y:,d}"))
    fig.add_trace(go.Bar(x=samples["second"], y=samples["dropped"].tolist(), name="dropped",
                         marker={"color": "#a855f7"}, hovertemplate="%{y:,d}"))
    fig.update_layout(title={"text": "Failed and dropped per second"}, barmode="stack", xaxis_title=SECOND_AXIS,
                      yaxis_title="requests", yaxis_rangemode="tozero", **_LAYOUT)
    return fig


RUN_COLOURS = ("#3b82f6", "#f59e0b")


def load_test_overlay(runs: list[tuple[str, pd.DataFrame]]) -> Any | None:
    """Runs on the same axes by second since their start: sent per second above (up to the last send), corrected
    p99 below.

    `runs` holds (label, samples); a run without samples is left out; None when none has any.
    """
    drawn = [(label, s) for label, s in runs if not s.empty]
    if not drawn:
        return None
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("Sent per second", "Corrected p99 per second"))
    for i, (label, s) in enumerate(drawn):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        sending = _scheduled(s)
        fig.add_trace(go.Scatter(x=sending["second"], y=sending["sent"], name=f"{label} req/s", legendgroup=label,
                                 mode="lines+markers", marker={"size": 4}, line={"color": colour},
                                 hovertemplate="%{y:,d} req/s"), row=1, col=1)
        fig.add_trace(go.Scatter(x=s["second"], y=_numbers(s, "corrected_p99_ms"), name=f"{label} p99",
                                 legendgroup=label, mode="lines", connectgaps=False,
                                 line={"color": colour, "dash": "dash" if i else "solid"},
                                 hovertemplate="%{y:,.1f} ms"), row=2, col=1)
    # the legend to the right: above the plot it would run into the subplot titles
    fig.update_layout(**{**_LAYOUT, "height": 520, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
                         "legend": {"orientation": "v", "yanchor": "top", "y": 1.0, "x": 1.01}})
    fig.update_yaxes(title_text="requests / s", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="ms", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text=SECOND_AXIS, rangemode="tozero", row=2, col=1)
    return fig
