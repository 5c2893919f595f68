"""Plotly figure builders; a figure is built only from measured values, and a gap stays a gap."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from db.models import Simulation
from ui.format import BREAKER_COLOURS, SIMULATION_COLOURS

# a measured value, from low (dark) to high (light) in the controls' blue: green, amber and red mean health states
HEAT_SCALE = [[0.0, "#172554"], [0.5, "#3b82f6"], [1.0, "#dbeafe"]]
# at the bottom of a figure, under its time axis, where plotly makes room for it: above the plot a legend runs into
# the title and the toolbar once it holds more than a few names
LEGEND_BELOW: dict[str, Any] = {"orientation": "h", "yref": "container", "y": 0.0, "yanchor": "bottom",
                                "xanchor": "left", "x": 0.0, "font": {"size": 10}}

__all__ = [
    "LEGEND_BELOW",
    "annotate_simulations",
    "breaker_timeline",
    "line_mode",
    "load_test_errors",
    "load_test_latency",
    "load_test_overlay",
    "load_test_rate",
    "naive_utc",
    "on_grid",
    "per_service_heatmap",
    "picks_bars",
    "simulation_tag",
]


def per_service_heatmap(frame: pd.DataFrame, column: str, title: str, unit: str, since: Any, now: Any,
                        ) -> Any | None:
    """A row per service of a db.series.metric_series column over [since, now], its values as colour; None if
    nothing was measured.

    A bucket without a value (not scraped, or no row at all) stays an empty cell, never a zero. Rows, not a line
    per service: twenty lines on one plot are a tangle, and the browser takes as long to draw each line as the
    whole heatmap (with 23 services, two line charts made up half of the Overview's time).
    """
    if frame.empty or column not in frame:
        return None
    measured = frame[frame[column].notna()]
    if measured.empty:
        return None
    step_s = float(frame["step_s"].iloc[0])
    first = frame["bucket"].min()
    names = sorted(measured["service"].unique())
    rows = pd.Index(names).get_indexer(measured["service"])
    places = ((measured["bucket"] - first).dt.total_seconds() // step_s).astype("int64").to_numpy()
    z = np.full((len(names), int(places.max()) + 1), np.nan, dtype="float32")
    z[rows, places] = measured[column].to_numpy(dtype="float32")
    # one Figure from plain dicts: validated once (adding traces and layout a piece at a time cost ~35 ms a chart)
    return go.Figure({"data": [{
        "type": "heatmap", "z": z, "y": names, "name": title,
        # x0 and dx instead of an x array: a few bytes for the time axis whatever the number of buckets
        "x0": naive_utc(first).isoformat(), "dx": step_s * 1000.0,
        "connectgaps": False, "ygap": 1, "colorscale": HEAT_SCALE,
        "colorbar": {"title": {"text": unit, "side": "right"}, "thickness": 12},
        "hovertemplate": "%{y} · %{x|%H:%M:%S} UTC<br>" + unit + ": %{z:,.1f}<extra></extra>",
    }], "layout": {
        "title": {"text": title},
        "height": 140 + 20 * len(names),  # each service keeps a row tall enough for its name
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "uirevision": "live",  # keep the user's zoom when the live fragment redraws
        "xaxis": {"type": "date", "title": {"text": "time (UTC)"},
                  "range": [naive_utc(since).isoformat(), naive_utc(now).isoformat()]},
        "yaxis": {"type": "category", "autorange": "reversed", "automargin": True},
    }})


def line_mode(y: Any) -> dict[str, Any]:
    """Trace fields for a line with gaps: a value with no value either side would draw nothing, so it gets a dot."""
    known = ~np.isnan(y)
    lone = known & ~np.concatenate(([False], known[:-1])) & ~np.concatenate((known[1:], [False]))
    if not lone.any():
        return {"mode": "lines"}
    return {"mode": "lines+markers", "marker": {"size": np.where(lone, 5, 0).astype("uint8")}}


def on_grid(place: Any, values: pd.Series) -> Any:
    """values as float32 at their places on a bucket grid (0 = first bucket), NaN where no value is."""
    y = np.full(int(place.max()) + 1 if len(place) else 0, np.nan, dtype="float32")
    y[place] = values.to_numpy(dtype="float32")
    return y


def _host(url: str) -> str:
    return url.split("://", 1)[-1]


def picks_bars(frame: pd.DataFrame) -> Any | None:
    """Picks per instance, bars grouped by service (one trace per service) from ui.data.picks_frame.

    None when there are no instances.
    """
    if frame.empty:
        return None
    fig = go.Figure()
    for name, group in frame.groupby("service", sort=True):
        fig.add_trace(
            go.Bar(
                x=[[str(name)] * len(group), [_host(u) for u in group["url"]]],
                y=group["picks"].tolist(),
                name=str(name),
                text=group["picks"].tolist(),
                textposition="outside",
                cliponaxis=False,
                customdata=group["share"].tolist(),
                hovertemplate="%{x}<br>%{y:,d} picks (%{customdata:.1f} % of the service)<extra></extra>",
            )
        )
    fig.update_layout(
        title={"text": "Picks per instance"},
        height=340,
        margin={"l": 10, "r": 10, "t": 48, "b": 10},
        showlegend=False,
        barmode="relative",
        uirevision="live",
        yaxis_title="picks",
        yaxis_rangemode="tozero",
    )
    return fig


BREAKER_STATES = ("CLOSED", "HALF_OPEN", "OPEN")


def naive_utc(t: Any) -> pd.Timestamp:
    """A time as a naive UTC timestamp (plotly shows date strings as written)."""
    ts = pd.Timestamp(t)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def breaker_timeline(segments: pd.DataFrame, since: Any, now: Any) -> Any | None:
    """Breaker state over time, one row per service, a span per state (from ui.data.breaker_segments).

    One trace per state, coloured as the state; None when there are no spans.
    """
    if segments.empty:
        return None
    fig = go.Figure()
    services = sorted(segments["service"].unique())
    for state in BREAKER_STATES:
        spans = segments[segments["state"] == state]
        if spans.empty:
            continue
        starts = [naive_utc(t) for t in spans["start"]]
        ends = [naive_utc(t) for t in spans["end"]]
        fig.add_trace(
            go.Bar(
                orientation="h",
                y=spans["service"].tolist(),
                base=[t.isoformat() for t in starts],
                x=[(e - s).total_seconds() * 1000.0 for s, e in zip(starts, ends, strict=True)],
                name=state,
                marker={"color": BREAKER_COLOURS[state]},
                customdata=[[s.strftime("%H:%M:%S"), e.strftime("%H:%M:%S"), r or "—"]
                            for s, e, r in zip(starts, ends, spans["reason"], strict=True)],
                hovertemplate=f"%{{y}}: <b>{state}</b> %{{customdata[0]}} to %{{customdata[1]}} UTC"
                              "<br>%{customdata[2]}<extra></extra>",
            )
        )
    fig.update_layout(
        title={"text": "Breaker state over time"},
        height=120 + 40 * len(services),
        margin={"l": 10, "r": 10, "t": 48, "b": 10},
        barmode="overlay",
        bargap=0.3,
        legend=LEGEND_BELOW,
        uirevision="live",
        xaxis={"type": "date", "range": [naive_utc(since).isoformat(), naive_utc(now).isoformat()],
               "title": "time (UTC)"},
        yaxis={"categoryorder": "array", "categoryarray": services[::-1], "title": None},
    )
    return fig


# -- load tests: built from db.queries.load_test_samples_frame (one row per second of a run) -----------------

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


def load_test_rate(samples: pd.DataFrame, requested_rps: float | None, duration_s: float | None) -> Any | None:
    """Requests sent per second (the achieved rate) and answered OK per second against the requested rate.

    The requested rate is a dashed line over the run's duration; the drain seconds after the last send have no
    sent point. None when there are no samples yet.
    """
    if samples.empty:
        return None
    fig = go.Figure()
    if requested_rps is not None:
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


# -- failure simulations on time charts ---------------------------------------------------------------------


LABEL_SHARE = 0.3  # of the chart's time range: about how wide a span's label is, so labels in a lane never collide
MAX_LANES = 5
LANE_STEP = 0.09  # of the plot's height, between two lanes of labels
SHORT_KINDS = {"service-failure": "failure", "network-latency": "latency", "database-overload": "db overload",
               "memory-leak": "memory leak"}


def _lanes(spans: list[tuple[Any, Any]], extent: Any) -> list[int]:
    """A label row per span (in start order): the first row whose previous label and span ended before this one
    starts, so spans begun together get their labels one under the other. `extent` is a label's width in x."""
    busy_until: list[Any] = []
    out = []
    for a, b in spans:
        lane = next((i for i, t in enumerate(busy_until) if t <= a), len(busy_until))
        if lane == len(busy_until):
            busy_until.append(a)
        busy_until[lane] = max(b, a + extent)
        out.append(lane % MAX_LANES)
    return out


def simulation_tag(r: Simulation) -> str:
    """A span's short label: "#12 failure · orders", "#3 latency · all", "#4 memory leak"."""
    short = SHORT_KINDS.get(r.kind, r.kind)
    if r.target:
        return f"#{r.id} {short} · {r.target}"
    return f"#{r.id} {short} · all" if r.kind == "network-latency" else f"#{r.id} {short}"


def annotate_simulations(fig: Any, simulations: Sequence[Simulation], now: Any, since: Any = None,
                         origin: Any = None) -> Any:
    """Shade each simulation's span on a time chart, labelled "#id kind · target"; returns `fig`.

    `simulations` are rows of db.queries.simulations. An active simulation's span runs to `now`; a span is
    clipped to start at `since` (the chart's window); one that never started (failed) or ended before `since` is
    left out. Labels of overlapping spans go one under the other. With `origin` (a load test's start) x is in
    seconds since it, for the load test charts' "second" axes; else x is naive UTC time, as the other builders
    draw it. The x range is the one the figure has, else set to the data and the spans: plotly would otherwise widen
    it to fit label text.
    """
    start_of = None if since is None else naive_utc(since)
    end_now = naive_utc(now)
    shown: list[tuple[Simulation, Any, Any]] = []
    for r in sorted(simulations, key=lambda r: (r.started_at, r.id)):
        if r.status == "failed":
            continue
        t0 = naive_utc(r.started_at)
        t1 = end_now if r.status == "active" or r.ended_at is None else naive_utc(r.ended_at)
        if start_of is not None:
            if t1 < start_of:
                continue
            t0 = max(t0, start_of)
        if origin is None:
            shown.append((r, t0, t1))
        else:
            shown.append((r, (t0 - naive_utc(origin)).total_seconds(), (t1 - naive_utc(origin)).total_seconds()))
    if not shown:
        return fig
    fixed = fig.layout.xaxis.range
    if fixed is not None:  # the builder set the window: it stays
        lo, hi = fixed if origin is not None else (naive_utc(fixed[0]), naive_utc(fixed[1]))
    else:
        xs = [x if origin is not None else naive_utc(x)
              for trace in fig.data for x in (trace.x if trace.x is not None else ())]
        lo = min([*xs, *(a for _, a, _ in shown)])
        hi = max([*xs, *(b for _, _, b in shown)])
    extent = (hi - lo) * LABEL_SHARE
    # under lines, a span is drawn below them; a heatmap would hide it there, so it goes over the cells, faintly
    layer = "above" if any(t.type == "heatmap" for t in fig.data) else "below"
    lanes = _lanes([(a, b) for _, a, b in shown], extent)
    for (r, x0, x1), lane in zip(shown, lanes, strict=True):
        colour = SIMULATION_COLOURS.get(r.kind, "#6b7280")
        a, b = (x0, x1) if origin is not None else (x0.isoformat(), x1.isoformat())
        fig.add_vrect(x0=a, x1=b, fillcolor=colour, opacity=0.12, line={"width": 1, "color": colour},
                      layer=layer, name=f"simulation {r.id}")
        # near the right edge a label starting at the span would be cut off: it ends at the span's end instead
        right = x0 + extent > hi
        fig.add_annotation(x=b if right else a, xref="x", y=1.0 - lane * LANE_STEP, yref="y domain",
                           xanchor="right" if right else "left", yanchor="top", showarrow=False,
                           text=simulation_tag(r), font={"size": 10, "color": colour})
    fig.update_xaxes(range=[lo, hi] if origin is not None else [lo.isoformat(), hi.isoformat()])
    return fig
