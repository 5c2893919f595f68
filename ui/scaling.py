"""The Scaling page's building blocks: service rows with what may be done, instance-count steps, the chart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from contract.scaling import AutoscalerConfig, ScalingOut
from db.models import Service, Simulation
from ui.charts import annotate_simulations, naive_utc
from ui.data import value_or_none
from ui.format import SCALING_DIRECTIONS, metric_vs_target

# -- scaling (db.queries.list_services and the scaling_events reads) -------------------------------------------

EXTERNAL = "External service: the engine does not run its instances, so it cannot add or remove any."


@dataclass(frozen=True)
class ScalingRow:
    """One service on the Scaling page: counts, bounds and settings from PostgreSQL, load live from the engine.

    `up_blocked` / `down_blocked` say why Scale up / Scale down cannot be used now (None: it can).
    """

    id: int
    name: str
    status: str
    managed: bool
    instance_count: int
    healthy_count: int
    load: int | None  # requests in flight through the engine; None when the API did not answer
    min_instances: int
    max_instances: int
    autoscaler: AutoscalerConfig | None  # None = off
    up_blocked: str | None
    down_blocked: str | None


def scaling_rows(services: Sequence[Service], live: ScalingOut | None, act_help: str | None) -> list[ScalingRow]:
    """Services as Scaling page rows; `live` is GET /api/scaling's answer (the load) or None, `act_help` why the
    user may not act (ui.session.needs) or None.

    The buttons follow the API's rule: up for a managed service below its max, down above its min.
    """
    loads = {s.id: s.load for s in (live.services if live is not None else [])}
    rows = []
    for s in services:
        count, managed = len(s.instances), bool(s.launch_command)
        up = down = EXTERNAL if not managed else act_help
        if up is None and count >= s.max_instances:
            up = f"At its maximum of {s.max_instances} instance(s): raise it in the autoscaler settings below."
        if down is None and count <= s.min_instances:
            down = f"At its minimum of {s.min_instances} instance(s): lower it in the autoscaler settings below."
        rows.append(ScalingRow(
            id=s.id, name=s.name, status=s.status or "unknown", managed=managed, instance_count=count,
            healthy_count=sum(i.status == "healthy" for i in s.instances), load=loads.get(s.id),
            min_instances=s.min_instances, max_instances=s.max_instances,
            autoscaler=None if s.autoscaler is None else AutoscalerConfig(**s.autoscaler), up_blocked=up,
            down_blocked=down,
        ))
    return rows


STEP_COLUMNS = ["service", "at", "count"]


def instance_steps(before: Mapping[str, int], steps: pd.DataFrame, since: datetime, now: datetime) -> pd.DataFrame:
    """Instances per service over a window as the corners of a step line (db.queries.scaling_counts_before and
    scaling_steps), each line running to `now`.

    A line starts at `since` with the count the last decision before it left, else at the service's first decision
    in the window with that decision's from_count (before it the count is not known). A service with no decision at
    all has no line.
    """
    rows: list[list[Any]] = []
    names = sorted(set(before) | set(steps["service_name"]))
    for name in names:
        current = before.get(name)
        if current is not None:
            rows.append([name, since, current])
        last = since
        group = steps[steps["service_name"] == name]
        for when, a, b in zip(group["timestamp"], group["from_count"], group["to_count"], strict=True):
            last = pd.Timestamp(when).to_pydatetime()
            if a != current:
                rows.append([name, last, int(a)])  # where the line starts, or a change no decision made
            if b != a:
                rows.append([name, last, int(b)])
            current = int(b)
        rows.append([name, max(now, last), current])
    return pd.DataFrame(rows, columns=STEP_COLUMNS)


def scaling_history(events: pd.DataFrame) -> pd.DataFrame:
    """db.queries.scaling_events as the columns the decision table shows, in words."""
    return pd.DataFrame({
        "time": pd.to_datetime(events["timestamp"], utc=True),
        "service": events["service_name"],
        "source": events["source"],
        "direction": [SCALING_DIRECTIONS.get(d, d) for d in events["direction"]],
        "instances": [f"{a} → {b}" for a, b in zip(events["from_count"], events["to_count"], strict=True)],
        "metric vs target": [metric_vs_target(value_or_none(m), value_or_none(v), value_or_none(t)) for m, v, t in
                             zip(events["metric"], events["metric_value"], events["target"], strict=True)],
        "reason": events["reason"],
    })


# -- scaling: instances per service over time ------------------------------------------------------------------

SCALE_SYMBOLS = {"up": "triangle-up", "down": "triangle-down"}


def _moves(events: pd.DataFrame, name: str) -> pd.DataFrame:
    """A service's scale-ups and scale-downs among db.queries.scaling_steps."""
    return events[(events["service_name"] == name) & events["direction"].isin(list(SCALE_SYMBOLS))]


def instance_counts(points: pd.DataFrame, events: pd.DataFrame, simulations: Sequence[Simulation] = (),
                    start: Any = None, now: Any = None) -> Any | None:
    """Instances over time, a row per service sharing the time axis: a step line (instance_steps) with each
    scale-up ▲ and scale-down ▼ (db.queries.scaling_steps) marked at its new count; a marker's hover says who
    decided it and why. The rows share one y range so counts compare. None when there is no line.

    With `start` and `now` the time axis runs from one to the other, and `simulations` are shaded from `start` on.
    """
    if points.empty:
        return None
    names = sorted(points["service"].unique())
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.1 if len(names) > 1 else 0)
    colours = qualitative.Plotly
    for row, name in enumerate(names, start=1):
        colour = colours[(row - 1) % len(colours)]
        line = points[points["service"] == name]
        fig.add_trace(go.Scatter(
            x=[naive_utc(t) for t in line["at"]], y=line["count"].tolist(), name=name, mode="lines", legendgroup=name,
            line={"shape": "hv", "color": colour, "width": 2}, showlegend=False,
            hovertemplate=f"{name}: %{{y}} instance(s)<extra></extra>"), row=row, col=1)
        fig.update_yaxes(title_text=name, row=row, col=1)
        moves = _moves(events, name)
        if moves.empty:
            continue
        fig.add_trace(go.Scatter(
            x=[naive_utc(t) for t in moves["timestamp"]], y=moves["to_count"].tolist(), name=f"{name} scaling",
            mode="markers", legendgroup=name, showlegend=False,
            marker={"symbol": [SCALE_SYMBOLS[d] for d in moves["direction"]], "size": 12, "color": colour,
                    "line": {"width": 1, "color": "#ffffff"}},
            customdata=[[SCALING_DIRECTIONS[d], a, b, src, why,
                         metric_vs_target(m if isinstance(m, str) else None, v, t) or ""]
                        for d, a, b, src, why, m, v, t in zip(
                            moves["direction"], moves["from_count"], moves["to_count"], moves["source"],
                            moves["reason"], moves["metric"], moves["metric_value"], moves["target"], strict=True)],
            hovertemplate=(f"<b>{name} %{{customdata[0]}}: %{{customdata[1]}} → %{{customdata[2]}}</b> "
                           "(%{customdata[3]}) at %{x|%H:%M:%S} UTC<br>%{customdata[4]}<br>%{customdata[5]}"
                           "<extra></extra>")), row=row, col=1)
    top = int(points["count"].max())
    fig.update_yaxes(range=[0, top + max(1, top // 5)], dtick=1 if top <= 8 else None, rangemode="tozero")
    fig.update_xaxes(title_text="time (UTC)", row=len(names), col=1)
    fig.update_layout(title={"text": "Instances per service"}, height=150 + 110 * len(names),
                      margin={"l": 10, "r": 10, "t": 48, "b": 10}, hovermode="closest", hoverlabel={"align": "left"},
                      uirevision="live")
    if now is not None:
        annotate_simulations(fig, simulations, now, since=start)
        if start is not None:  # the spans are clipped to `start`: the axis holds them and every line
            fig.update_xaxes(range=[naive_utc(start).isoformat(), naive_utc(now).isoformat()])
    return fig
