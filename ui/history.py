"""Health history on the dashboard: uptime figures read from the database, heartbeat cells from the API's latest
checks, the check-latency line and the daily uptime bars."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape

import plotly.graph_objects as go
from sqlalchemy.orm import Session

from contract.history import CheckOut
from db import history
from ui.charts import LEGEND_BELOW
from ui.format import NA, STATUS_COLOURS

__all__ = [
    "UNKNOWN_COLOUR",
    "CardHistory",
    "bar_colour",
    "card_histories",
    "daily_bars",
    "fmt_uptime",
    "heartbeat_html",
    "latency_chart",
]

UNKNOWN_COLOUR = STATUS_COLOURS["unknown"]
DAY, MONTH = timedelta(days=1), timedelta(days=30)


def fmt_uptime(value: float | None) -> str:
    """An uptime percentage cut (not rounded) to two decimals, so 99.999 never reads 100.00; None is n/a."""
    if value is None or math.isnan(value):
        return NA
    return f"{math.floor(value * 100) / 100:.2f} %"


@dataclass(frozen=True)
class CardHistory:
    """What a service card shows of the history: uptime over 24 h and 30 d (None: nothing observed) and the
    heartbeat (None: the API did not answer)."""

    uptime_24h: float | None
    uptime_30d: float | None
    checks: Sequence[CheckOut] | None


def card_histories(session: Session, service_ids: Sequence[int], now: datetime, grace: timedelta,
                   checks: Mapping[int, Sequence[CheckOut]] | None) -> dict[int, CardHistory]:
    """Each service's uptime over the last 24 h and 30 d (db.history, a query per window for all), with its latest
    checks (None for all when the API did not answer)."""
    day = history.services_availability(session, service_ids, now - DAY, now, grace)
    month = history.services_availability(session, service_ids, now - MONTH, now, grace)
    return {sid: CardHistory(day[sid].uptime_percent, month[sid].uptime_percent,
                             None if checks is None else checks.get(sid, []))
            for sid in service_ids}


def heartbeat_html(checks: Sequence[CheckOut] | None, width: int) -> str:
    """A row of `width` cells, oldest left, coloured by each check's result; cells before the first known check
    are empty. None (no answer from the API) reads n/a."""
    if checks is None:
        return f'<div class="mm-caption mm-beats-na">Heartbeat {NA} (the API did not answer)</div>'
    cells = ['<span class="mm-beat" style="display:inline-block;width:5px;height:14px;margin-right:1px;'
             'border-radius:1px;background:rgba(128,128,128,0.15)"></span>'] * max(0, width - len(checks))
    for c in reversed(list(checks)[:width]):
        colour = STATUS_COLOURS.get(c.state.value, UNKNOWN_COLOUR)
        latency = NA if c.latencyMs is None else f"{c.latencyMs:.1f} ms"
        tip = f"{c.at} · instance {c.instanceId} · {c.state.value} · {latency}" + (f" · {c.error}" if c.error else "")
        cells.append(f'<span class="mm-beat mm-beat-{c.state.value}" title="{escape(tip)}" style="display:inline-block;'
                     f'width:5px;height:14px;margin-right:1px;border-radius:1px;background:{colour}"></span>')
    return f'<div class="mm-beats" style="line-height:14px;white-space:nowrap;overflow:hidden">{"".join(cells)}</div>'


def latency_chart(points: Sequence[history.LatencyPoint], title: str) -> go.Figure | None:
    """Check latency per step: the mean and the max over the service's instances; None without a measured point.
    A step without checks is absent, so the line breaks there rather than bridging."""
    measured = [p for p in points if p.latency_avg_ms is not None]
    if not measured:
        return None
    times = [p.at for p in points]
    fig = go.Figure()
    fig.add_scatter(x=times, y=[p.latency_avg_ms for p in points], name="avg", mode="lines",
                    line={"color": "#3b82f6"}, connectgaps=False)
    fig.add_scatter(x=times, y=[p.latency_max_ms for p in points], name="max", mode="lines",
                    line={"color": "#ffa421", "dash": "dot"}, connectgaps=False)
    fig.update_layout(title=title, xaxis_title="time (UTC)", yaxis_title="check latency (ms)", legend=LEGEND_BELOW,
                      height=320, margin={"l": 10, "r": 10, "t": 40, "b": 40})
    return fig


def bar_colour(percent: float | None) -> str:
    """A day's colour: grey unknown, green from 99.9 %, amber from 99 %, red below."""
    if percent is None:
        return UNKNOWN_COLOUR
    if percent >= 99.9:
        return STATUS_COLOURS["healthy"]
    if percent >= 99.0:
        return STATUS_COLOURS["degraded"]
    return STATUS_COLOURS["unhealthy"]


def daily_bars(days: Sequence[tuple[date, float | None, int]], title: str) -> go.Figure:
    """One bar per day, all the same height (the colour carries the uptime, the hover the figures), so an unknown
    day is a grey bar and never a low one."""
    labels = [d.isoformat() for d, _, _ in days]
    hover = [f"{d.isoformat()}: {fmt_uptime(p)} up · {n:,d} checks" if p is not None
             else f"{d.isoformat()}: no data" for d, p, n in days]
    fig = go.Figure(go.Bar(x=labels, y=[1] * len(days), marker={"color": [bar_colour(p) for _, p, _ in days]},
                           hovertext=hover, hoverinfo="text",
                           customdata=[[p, n] for _, p, n in days]))
    fig.update_layout(title=title, height=160, bargap=0.15, showlegend=False, yaxis={"visible": False},
                      xaxis={"type": "category", "showticklabels": False}, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig
