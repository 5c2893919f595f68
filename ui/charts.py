"""Plotly figure builders; a figure is built only from measured values, and a gap stays a gap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

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
    whole heatmap.
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
    # one Figure from plain dicts: validated once, where adding traces and layout a piece at a time validates each
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
