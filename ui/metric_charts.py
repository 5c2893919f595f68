"""The Metrics page's figures: one per quantity, a line per service on the window's bucket grid, and the range's
breaker transitions, failure simulations, scaling and load tests on the same time axis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from db.annotations import Annotations
from db.models import Simulation
from ui.charts import BREAKER_STATES, annotate_simulations, line_mode, naive_utc, on_grid, simulation_tag
from ui.format import BREAKER_COLOURS, SIMULATION_COLOURS, simulation_kind, simulation_params
from ui.metrics import PERCENTILES, Window, floor_time
from ui.scaling import SCALE_SYMBOLS

__all__ = [
    "LATENCY_NOTE",
    "QUANTITIES",
    "Canvas",
    "Quantity",
    "canvas",
    "event_table",
    "latency_figure",
    "many_lines",
    "quantity_figure",
    "service_colours",
]

DASHES = {"p50": "dot", "p95": "solid", "p99": "dash", "avg": "dashdot"}  # p95, shown alone by default, solid
LOAD_TEST_COLOUR = "#64748b"
EVENT_LINE = "#6b7280"
LEGEND_MAX = 8  # services; more, and only the first chart has a legend
PALETTE = qualitative.Dark24
EVENT_COLUMNS = ["time", "kind", "service", "event"]
LATENCY_NOTE = ("In a bucket longer than the collection interval, p50 is the request-weighted mean of the collection "
                "buckets' medians, and p95 and p99 are the worst collection bucket's (percentiles cannot be merged "
                "exactly), so a long bucket shows its worst moment rather than a smoothed one; avg is the "
                "request-weighted mean. Dotted p50, solid p95, dashed p99, dash-dot avg.")


@dataclass(frozen=True)
class Quantity:
    """One chart: series column, title, y axis title with its unit, and the unit and number format of a hover."""

    column: str
    title: str
    axis: str
    unit: str
    fmt: str


QUANTITIES = (
    Quantity("rps", "Requests per second (req/s)", "req/s", "req/s", ",.2f"),
    Quantity("error_rate", "Error rate (% of requests)", "error rate (%)", "%", ",.2f"),
    Quantity("cpu_percent", "CPU (% of one core, mean over instances)", "CPU (% of one core)", "%", ",.1f"),
    Quantity("memory_mb", "Memory (MB resident, all instances)", "memory (MB)", "MB", ",.1f"),
)
LATENCY = Quantity("latency", "Latency (ms)", "latency (ms)", "ms", ",.1f")


def service_colours(names: Sequence[str]) -> dict[str, str]:
    """A colour per service by its place among every service, so a service keeps it whatever else is chosen."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _ms(times: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Times as milliseconds since the epoch (UTC), which a plotly date axis takes as numbers."""
    naive = pd.DatetimeIndex(pd.to_datetime(times, utc=True)).tz_convert(None)
    return np.asarray(naive.to_numpy().astype("datetime64[ms]").astype("float64"))


def _grid(frame: pd.DataFrame, window: Window) -> list[tuple[str, pd.DataFrame, Any]]:
    """Per service (by name): its rows and each row's place on the window's bucket grid."""
    origin = floor_time(window.start, window.step).timestamp() * 1000.0
    place = pd.Series((_ms(frame["bucket"]) - origin) // (window.step * 1000.0), index=frame.index).astype("int64")
    return [(str(name), group, place.loc[group.index].to_numpy())
            for name, group in frame.groupby("service", sort=True)]


@dataclass(frozen=True)
class Canvas:
    """What every figure of one run shares, worked out once: window, colours, rows on the grid, events."""

    window: Window
    label: str
    colours: dict[str, str]
    rows: list[tuple[str, pd.DataFrame, Any]]
    marks: list[dict[str, Any]]
    shapes: list[dict[str, Any]]
    notes: list[dict[str, Any]]


def canvas(frame: pd.DataFrame, window: Window, label: str, colours: dict[str, str], events: Annotations,
           kinds: Sequence[str]) -> Canvas:
    """The shared parts of the page's figures, from db.series.metric_series and the window's events."""
    # the spans are drawn once on a figure spanning the window, so their labels are laid out against all of it
    spans = go.Figure(go.Scatter(x=[naive_utc(window.start), naive_utc(window.end)], y=[None, None]))
    _shade_spans(spans, events, kinds, window)
    layout = spans.layout.to_plotly_json()
    return Canvas(window, label, colours, _grid(frame, window), _event_marks(events, kinds, window),
                  list(layout.get("shapes", [])), list(layout.get("annotations", [])))


def _line(c: Canvas, place: Any, values: pd.Series) -> dict[str, Any]:
    """One service's column on the bucket grid as trace fields: x0 and dx, float32 y with NaN for no row."""
    # no x array: a date axis takes the first bucket and a step in ms; a NaN breaks the line where nothing was
    # measured instead of bridging it; at most window.buckets + 1 points
    y = on_grid(place, values)
    origin = floor_time(c.window.start, c.window.step)
    return {"type": "scatter", "connectgaps": False, "x0": naive_utc(origin).isoformat(),
            "dx": c.window.step * 1000.0, "y": y, **line_mode(y)}


def _hover(name: str, q: Quantity) -> str:
    return f"<b>{name}</b> %{{x|%b %d %H:%M:%S}} UTC<br>%{{y:{q.fmt}}} {q.unit}<extra></extra>"


def _figure(c: Canvas, q: Quantity, height: int, lines: list[dict[str, Any]]) -> Any:
    w = c.window
    return go.Figure(data=[*lines, *c.marks], layout={
        "title": {"text": q.title}, "height": height, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "hovermode": "closest", "uirevision": c.label,  # the user's zoom stays while the window moves
        "legend": {"font": {"size": 10}, "groupclick": "togglegroup"}, "shapes": c.shapes, "annotations": c.notes,
        "showlegend": q == QUANTITIES[0] or not many_lines(c),
        "xaxis": {"type": "date", "title": {"text": "time (UTC)"},
                  "range": [naive_utc(w.start).isoformat(), naive_utc(w.end).isoformat()]},
        "yaxis": {"title": {"text": q.axis}, "rangemode": "tozero"},
        "yaxis2": {"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
    })


def many_lines(c: Canvas) -> bool:
    """Whether only the first chart has a legend: with this many services a legend is a scroll box on every chart."""
    # drawing a 20-entry legend on each of five charts costs the browser about a fifth of the page's drawing time;
    # a service has the same colour on every chart and a line's hover names it
    return len(c.rows) > LEGEND_MAX


def quantity_figure(c: Canvas, q: Quantity) -> Any | None:
    """A line per service of a db.series column, events on the same time axis; None if nothing measured."""
    # a service without a value has no line rather than a line of zeros
    lines = [{**_line(c, place, group[q.column]), "name": name, "legendgroup": name, "hovertemplate": _hover(name, q),
              "line": {"color": c.colours.get(name), "width": 1.5}}
             for name, group, place in c.rows if group[q.column].notna().any()]
    return _figure(c, q, 300, lines) if lines else None


def latency_figure(c: Canvas, percentiles: Sequence[str]) -> Any | None:
    """Latency per service per chosen percentile (a dash each); None if none is chosen or measured."""
    lines = [{**_line(c, place, group[PERCENTILES[p]]), "name": f"{name} {p}", "legendgroup": name,
              "hovertemplate": _hover(f"{name} {p}", LATENCY),
              "line": {"color": c.colours.get(name), "width": 1.5, "dash": DASHES[p]}}
             for name, group, place in c.rows for p in percentiles if group[PERCENTILES[p]].notna().any()]
    return _figure(c, LATENCY, 380, lines) if lines else None


# -- events on the charts -----------------------------------------------------------------------------------------


def _when(t: Any) -> str:
    return f"{naive_utc(t):%b %d %H:%M:%S} UTC"


def _run_end(run: Any, window: Window) -> datetime:
    """Where a load test's span ends: its end, else its planned end, else (running) the window's end."""
    if not pd.isna(run.ended_at):
        return pd.Timestamp(run.ended_at).to_pydatetime()
    if run.status != "running":
        return pd.Timestamp(run.started_at).to_pydatetime() + timedelta(seconds=float(run.duration_s))
    return window.end


def _run_tag(run: Any) -> str:
    return f"load test #{run.id} · {run.target_service or 'all'} · {run.requests_per_second:,g} req/s"


def _shown_sims(events: Annotations) -> list[Simulation]:
    return [r for r in events.simulations if r.status != "failed"]


def _shade_spans(fig: Any, events: Annotations, kinds: Sequence[str], window: Window) -> None:
    """Failure simulations (as every page shades them) and load tests as shaded spans with a label."""
    if "simulations" in kinds:
        annotate_simulations(fig, _shown_sims(events), window.end, since=window.start)
    if "load_tests" not in kinds:
        return
    for run in events.load_tests.itertuples():
        if run.status == "failed":
            continue
        a = max(naive_utc(run.started_at), naive_utc(window.start))
        b = min(naive_utc(_run_end(run, window)), naive_utc(window.end))
        fig.add_vrect(x0=a.isoformat(), x1=b.isoformat(), fillcolor=LOAD_TEST_COLOUR, opacity=0.1, layer="below",
                      line={"width": 1, "color": LOAD_TEST_COLOUR}, name=f"load test {run.id}")
        fig.add_annotation(x=a.isoformat(), xref="x", y=0.0, yref="y domain", xanchor="left", yanchor="bottom",
                           showarrow=False, text=_run_tag(run), font={"size": 10, "color": LOAD_TEST_COLOUR})


def _marks(name: str, times: Any, texts: list[str], colour: str, symbol: Any, *, lines: bool = True,
           marker_colour: Any = None) -> list[dict[str, Any]]:
    """Point events: a dotted vertical line each (one trace) and a marker on the top edge that says what."""
    x = _ms(times)
    if not len(x):
        return []
    out: list[dict[str, Any]] = []
    if lines:
        out.append({"type": "scatter", "x": np.column_stack([x, x, np.full_like(x, np.nan)]).ravel(),
                    "y": np.tile([0.0, 1.0, np.nan], len(x)), "yaxis": "y2", "mode": "lines",
                    "name": f"{name} (lines)", "legendgroup": name, "showlegend": False, "hoverinfo": "skip",
                    "line": {"color": colour, "width": 1, "dash": "dot"}})
    out.append({"type": "scatter", "x": x, "y": np.ones(len(x)), "yaxis": "y2", "mode": "markers", "name": name,
                "legendgroup": name, "cliponaxis": False, "hovertext": texts, "hoverinfo": "text",
                "marker": {"symbol": symbol, "size": 10, "color": marker_colour or colour,
                           "line": {"width": 1, "color": "#ffffff"}}})
    return out


def _event_marks(events: Annotations, kinds: Sequence[str], window: Window) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if "breakers" in kinds:
        for state in BREAKER_STATES:
            rows = events.breakers[events.breakers["to_state"] == state]
            out += _marks(f"breaker → {state}", rows["at"], [
                f"<b>{r.service_name} breaker {r.from_state} → {r.to_state}</b><br>{_when(r.at)}<br>{r.reason}"
                for r in rows.itertuples()], BREAKER_COLOURS[state], "diamond")
    if "scaling" in kinds:
        for direction, symbol in SCALE_SYMBOLS.items():
            rows = events.scaling[events.scaling["direction"] == direction]
            out += _marks(f"scale-{direction}", rows["timestamp"], [
                f"<b>{r.service_name} scaled {direction}: {r.from_count} → {r.to_count}</b> ({r.source})<br>"
                f"{_when(r.timestamp)}<br>{r.reason}" for r in rows.itertuples()], EVENT_LINE, symbol)
    if "simulations" in kinds:
        sims = _shown_sims(events)
        out += _marks("failure simulation", [max(naive_utc(r.started_at), naive_utc(window.start)) for r in sims],
                      [f"<b>{simulation_tag(r)}</b><br>{simulation_params(r.kind, r.params)}<br>"
                       f"from {_when(r.started_at)} ({r.status})" for r in sims], EVENT_LINE, "square", lines=False,
                      marker_colour=[SIMULATION_COLOURS.get(r.kind, EVENT_LINE) for r in sims])
    if "load_tests" in kinds:
        runs = events.load_tests[events.load_tests["status"] != "failed"]
        out += _marks("load test", [max(naive_utc(t), naive_utc(window.start)) for t in runs["started_at"]],
                      [f"<b>{_run_tag(r)}</b><br>{r.concurrent_users} users, {r.duration_s:g} s ({r.status})<br>"
                       f"from {_when(r.started_at)}" for r in runs.itertuples()], LOAD_TEST_COLOUR, "circle",
                      lines=False)
    return out


def event_table(events: Annotations) -> pd.DataFrame:
    """Every event of the window in time order, in words: time, kind, service and what happened."""
    rows: list[list[Any]] = []
    for r in events.breakers.itertuples():
        rows.append([r.at, "breaker", r.service_name, f"{r.from_state} → {r.to_state}: {r.reason}"])
    for r in events.scaling.itertuples():
        rows.append([r.timestamp, "scaling", r.service_name,
                     f"scaled {r.direction} {r.from_count} → {r.to_count} ({r.source}): {r.reason}"])
    for s in _shown_sims(events):
        rows.append([s.started_at, "simulation", s.target or "all",
                     f"{simulation_tag(s)}: {simulation_kind(s.kind)}, {simulation_params(s.kind, s.params)} "
                     f"({s.status})"])
    for run in events.load_tests.itertuples():
        rows.append([run.started_at, "load test", run.target_service or "all",
                     f"{_run_tag(run)}, {run.concurrent_users} users, {run.duration_s:g} s ({run.status})"])
    table = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    table["time"] = pd.to_datetime(table["time"], utc=True)
    return table.sort_values("time", kind="stable", ignore_index=True)
