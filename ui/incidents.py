"""The Incidents page's building blocks: the incident list, MTTA and MTTR per service, and one incident's timeline
on one time axis (a lane per kind of event: points for instants, bars for spans such as simulations and load
tests) and as a table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from contract.incidents import IncidentDetailOut, IncidentOut, TimelineEventOut, TimelineKind
from ui.charts import LEGEND_BELOW, naive_utc
from ui.format import NA, fmt_duration_ms, fmt_json

__all__ = [
    "INCIDENT_EMOJI",
    "KIND_COLOURS",
    "KIND_LABELS",
    "SPAN_KINDS",
    "describe",
    "duration_s",
    "event_table",
    "fmt_seconds_long",
    "incident_label",
    "incident_table",
    "stats_table",
    "timeline_figure",
]

INCIDENT_EMOJI: dict[str, str] = {"open": "🔴", "resolved": "🟢"}
KIND_LABELS: dict[TimelineKind, str] = {
    TimelineKind.ALERT: "alert", TimelineKind.HEALTH: "health", TimelineKind.BREAKER: "breaker",
    TimelineKind.SIMULATION: "simulation", TimelineKind.LOAD_TEST: "load test", TimelineKind.SCALING: "scaling",
    TimelineKind.NOTIFICATION: "notification", TimelineKind.NOTE: "note",
}
KIND_COLOURS: dict[TimelineKind, str] = {
    TimelineKind.ALERT: "#ff4b4b", TimelineKind.HEALTH: "#ffa421", TimelineKind.BREAKER: "#a855f7",
    TimelineKind.SIMULATION: "#ef4444", TimelineKind.LOAD_TEST: "#0ea5e9", TimelineKind.SCALING: "#3b82f6",
    TimelineKind.NOTIFICATION: "#21c354", TimelineKind.NOTE: "#6b7280",
}
SYMBOLS: dict[TimelineKind, str] = {
    TimelineKind.ALERT: "diamond", TimelineKind.HEALTH: "circle", TimelineKind.BREAKER: "square",
    TimelineKind.SCALING: "triangle-up", TimelineKind.NOTIFICATION: "star", TimelineKind.NOTE: "circle-open",
}
# what lasts: drawn as a bar from its start to its end (to now while it goes on)
SPAN_KINDS = frozenset({TimelineKind.SIMULATION, TimelineKind.LOAD_TEST})


def _utc(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def duration_s(i: IncidentOut, now: datetime) -> float:
    """Seconds from the incident's start to its resolution, or to now while it is open."""
    start = datetime.fromisoformat(i.startedAt)
    end = _utc(i.resolvedAt) or now
    return max(0.0, (end - start).total_seconds())


def fmt_seconds_long(seconds: float | None) -> str:
    """A duration in seconds in the units that read well ("4 min 10 s"); None is n/a."""
    return NA if seconds is None else fmt_duration_ms(seconds * 1000.0)


def incident_label(i: IncidentOut) -> str:
    """"🔴 2026-01-02 10:04 · payments · errors-high on payments" for a picker."""
    return f"{INCIDENT_EMOJI.get(i.status, '⚪')} {i.startedAt[:16].replace('T', ' ')} · {i.service or '-'} · {i.title}"


def incident_table(incidents: Sequence[IncidentOut], now: datetime) -> pd.DataFrame:
    """Incidents, as given (newest first), with their duration and whether and by whom they were acknowledged."""
    return pd.DataFrame({
        "started": pd.to_datetime(pd.Index([i.startedAt for i in incidents], dtype=object), utc=True),
        "status": [f"{INCIDENT_EMOJI.get(i.status, '⚪')} {i.status}" for i in incidents],
        "service": [i.service or "(the monitor)" for i in incidents],
        "title": [i.title for i in incidents],
        "severity": [i.severity.value for i in incidents],
        "duration": [fmt_seconds_long(duration_s(i, now)) + (" so far" if i.resolvedAt is None else "")
                     for i in incidents],
        "acknowledged": [f"{i.acknowledgedAt[:16].replace('T', ' ')} by {i.acknowledgedBy or NA}"
                         if i.acknowledgedAt else "no" for i in incidents],
        "expected": ["🧪 expected" if i.expected else "" for i in incidents],
        "latest note": [i.latestNote or "" for i in incidents],
    })


def stats_table(rows: Sequence[tuple[str, int, float | None, float | None]]) -> pd.DataFrame:
    """(service, incidents, MTTA s, MTTR s) per service as the table shows them."""
    return pd.DataFrame({
        "service": [r[0] for r in rows],
        "incidents": [r[1] for r in rows],
        "MTTA": [fmt_seconds_long(r[2]) for r in rows],
        "MTTR": [fmt_seconds_long(r[3]) for r in rows],
    })


def _span_end(e: TimelineEventOut, now: datetime) -> datetime:
    start = datetime.fromisoformat(e.at)
    end = _utc(e.endAt) or now
    return max(end, start + timedelta(milliseconds=1))


def _is_span(e: TimelineEventOut) -> bool:
    return e.endAt is not None or e.kind in SPAN_KINDS


def event_table(events: Sequence[TimelineEventOut]) -> pd.DataFrame:
    """The timeline's events, oldest first: when, until when (spans), kind, title and the details as JSON."""
    return pd.DataFrame({
        "at": pd.to_datetime(pd.Index([e.at for e in events], dtype=object), utc=True),
        "until": pd.to_datetime(pd.Index([e.endAt for e in events], dtype=object), utc=True),
        "kind": [KIND_LABELS.get(e.kind, str(e.kind)) for e in events],
        "event": [describe(e) for e in events],
        "detail": [fmt_json(e.detail) if e.detail else "" for e in events],
    })


def describe(e: TimelineEventOut) -> str:
    """An event in words: its title, and a note's text after it."""
    note = e.detail.get("note") if e.kind is TimelineKind.NOTE else None
    return f"{e.title}: {note}" if isinstance(note, str) and note else e.title


def _hover(e: TimelineEventOut) -> str:
    return describe(e).replace("<", "&lt;")


def timeline_figure(incident: IncidentDetailOut, now: datetime) -> Any:
    """Every event of the incident on one time axis, a lane per kind (in the order of TimelineKind), the
    incident's own span shaded; None when it has no event."""
    events = incident.timeline
    if not events:
        return None
    lanes = [k for k in TimelineKind if any(e.kind is k for e in events)]
    fig = go.Figure()
    for kind in lanes:
        label, colour = KIND_LABELS[kind], KIND_COLOURS[kind]
        spans = [e for e in events if e.kind is kind and _is_span(e)]
        points = [e for e in events if e.kind is kind and not _is_span(e)]
        if spans:
            starts = [naive_utc(e.at) for e in spans]
            ends = [naive_utc(_span_end(e, now)) for e in spans]
            fig.add_trace(go.Bar(
                orientation="h", y=[label] * len(spans), base=[t.isoformat() for t in starts],
                x=[(b - a).total_seconds() * 1000.0 for a, b in zip(starts, ends, strict=True)],
                name=label, marker={"color": colour, "opacity": 0.55}, width=0.5,
                text=[_hover(e) for e in spans], textposition="inside", insidetextanchor="start",
                customdata=[[a.strftime("%H:%M:%S"), b.strftime("%H:%M:%S")] for a, b in zip(starts, ends,
                                                                                           strict=True)],
                hovertemplate="%{text}<br>%{customdata[0]} to %{customdata[1]} UTC<extra>" + label + "</extra>"))
        if points:
            fig.add_trace(go.Scatter(
                mode="markers", x=[naive_utc(e.at).isoformat() for e in points], y=[label] * len(points),
                name=label, marker={"color": colour, "size": 12, "symbol": SYMBOLS.get(kind, "circle"),
                                    "line": {"width": 1, "color": "#ffffff"}},
                text=[_hover(e) for e in points],
                hovertemplate="%{text}<br>%{x|%H:%M:%S} UTC<extra>" + label + "</extra>"))
    start = naive_utc(incident.startedAt)
    end = naive_utc(incident.resolvedAt or now)
    fig.add_vrect(x0=start.isoformat(), x1=end.isoformat(), fillcolor="#ff4b4b", opacity=0.08, line_width=0,
                  layer="below")
    fig.add_annotation(x=start.isoformat(), y=1.0, yref="paper", xanchor="left", yanchor="bottom",
                       showarrow=False, text="incident" + (" (open)" if incident.resolvedAt is None else ""),
                       font={"size": 10, "color": "#ff4b4b"})
    times = [naive_utc(e.at) for e in events] + [naive_utc(_span_end(e, now)) for e in events if _is_span(e)]
    lo, hi = min([*times, start]), max([*times, end])
    pad = max((hi - lo) * 0.04, pd.Timedelta(seconds=5))
    fig.update_layout(
        title={"text": "Timeline"}, height=150 + 48 * len(lanes), barmode="overlay", bargap=0.4,
        margin={"l": 10, "r": 10, "t": 48, "b": 10}, legend=LEGEND_BELOW, showlegend=False,
        xaxis={"type": "date", "title": {"text": "time (UTC)"},
               "range": [(lo - pad).isoformat(), (hi + pad).isoformat()]},
        yaxis={"type": "category", "categoryorder": "array", "categoryarray": [KIND_LABELS[k] for k in lanes][::-1],
               "title": {"text": "event"}, "automargin": True})
    return fig
