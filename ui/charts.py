"""Plotly figure builders; a figure is built only from measured values, and a gap stays a gap."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

__all__ = ["per_service_lines"]


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
