"""Plotly figure builders; a figure is built only from measured values, and a gap stays a gap."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from ui.format import BREAKER_COLOURS

__all__ = ["breaker_timeline", "per_service_lines", "picks_bars"]


def per_service_lines(frame: pd.DataFrame, column: str, title: str, y_title: str) -> Any | None:
    """One line per service of `column` over time from db.queries.metrics_frame; None if nothing was measured.

    Buckets where the value is NULL (not scraped) are drawn as gaps, not as zero.
    """
    if frame.empty or column not in frame:
        return None
    fig = go.Figure()
    for name, group in frame.groupby("service_name", sort=True):
        if not group[column].notna().any():
            continue
        fig.add_trace(
            go.Scatter(
                x=group["timestamp"],
                y=group[column],
                name=str(name),
                mode="lines+markers",
                marker={"size": 4},
                connectgaps=False,
                hovertemplate="%{y:,.1f}",
            )
        )
    if not fig.data:
        return None
    fig.update_layout(
        title={"text": title},
        height=320,
        margin={"l": 10, "r": 10, "t": 48, "b": 10},
        hovermode="x unified",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        uirevision="live",  # keep the user's zoom when the live fragment redraws
        xaxis_title="time (UTC)",
        yaxis_title=y_title,
        yaxis_rangemode="tozero",
    )
    return fig


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


def _utc(t: Any) -> pd.Timestamp:
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
        starts = [_utc(t) for t in spans["start"]]
        ends = [_utc(t) for t in spans["end"]]
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
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        uirevision="live",
        xaxis={"type": "date", "range": [_utc(since).isoformat(), _utc(now).isoformat()],
               "title": "time (UTC)"},
        yaxis={"categoryorder": "array", "categoryarray": services[::-1], "title": None},
    )
    return fig
