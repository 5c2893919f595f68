"""Where the metrics are kept: the Storage page's building blocks (partitions, sizes, retention, one colour per
shard status) and the banner every page shows while the database or the engine's API is out of reach."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from sqlalchemy.orm import Session

from db import storage_queries
from db.storage_queries import StorageSnapshot
from ui import api, data
from ui.charts import LEGEND_BELOW
from ui.format import NA, fmt_ago, fmt_count

__all__ = [
    "SHARD_COLOURS",
    "SHARD_EMOJI",
    "SHARD_STATUSES",
    "Banner",
    "HealthProbe",
    "StorageKpis",
    "fmt_bytes",
    "fmt_short",
    "fmt_when",
    "now",
    "outage_banner",
    "partition_table",
    "probe_health",
    "read_storage",
    "shard_label",
    "show_outage_banner",
    "size_bars",
    "storage_kpis",
]

# db.partitions.shard_status values, in the legend's order: written to now green, made ahead blue, past and
# kept purple, past the retention (the next upkeep run drops it) red, the DEFAULT catch-all grey
SHARD_STATUSES = ("active", "future", "sealed", "expired", "default")
SHARD_COLOURS: dict[str, str] = {"active": "#21c354", "future": "#3b82f6", "sealed": "#a855f7", "expired": "#ff4b4b",
                                 "default": "#a3a8b8"}
SHARD_EMOJI: dict[str, str] = {"active": "🟢", "future": "🔵", "sealed": "🟣", "expired": "🔴", "default": "⚪"}
CACHE_S = 5.0  # the page redraws every 10 s; sizes grow slowly
HEALTH_TTL_S = 2.0
HEALTH_TIMEOUT_S = 1.5  # the banner must not hold up every page for long when the API hangs
MB = 1_000_000
_UNITS = ("B", "kB", "MB", "GB", "TB")


def fmt_bytes(size: int | None) -> str:
    """A size in decimal units: "512 B", "8.2 kB", "1.3 MB"; None is "n/a"."""
    if size is None:
        return NA
    value, unit = float(size), 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value, unit = value / 1000, unit + 1
    return f"{size:,d} B" if unit == 0 else f"{value:,.1f} {_UNITS[unit]}"


def fmt_when(when: datetime | None, now: datetime | None = None) -> str:
    """A UTC time: "14:05:09 UTC" on `now`'s day, else "2026-01-12 14:05 UTC"; None is "n/a"."""
    if when is None:
        return NA
    when = when.astimezone(UTC)
    if now is not None and when.date() == now.astimezone(UTC).date():
        return f"{when:%H:%M:%S} UTC"
    return f"{when:%Y-%m-%d %H:%M} UTC"


def fmt_short(when: datetime | None) -> str:
    """A UTC time short enough for a metric card: "Nov 29 04:00"; None is "n/a"."""
    return NA if when is None else f"{when.astimezone(UTC):%b %d %H:%M}"


def shard_label(status: str) -> str:
    """A shard status with its colour's emoji: "🟢 active"."""
    return f"{SHARD_EMOJI.get(status, '⚪')} {status}"


# -- the Storage page (db.storage_queries.storage_frame) ----------------------------------------------------------


def now() -> datetime:
    """The time the Storage page judges partitions at (UTC); the one place it reads the clock."""
    return datetime.now(UTC)


@st.cache_data(ttl=CACHE_S, show_spinner=False)
def _snapshot(_session: Session, database_url: str, retention_days: int) -> StorageSnapshot:
    # keyed by the URL and the retention; the session is only the way in (not hashed)
    return storage_queries.storage_frame(_session, now(), retention_days)


def read_storage(retention_days: int) -> StorageSnapshot:
    """The partitions, oldest row and rollup, cached a few seconds; an unreachable database stops the run."""
    with data.reading() as db_session:
        return _snapshot(db_session, os.environ.get("DATABASE_URL", ""), retention_days)


def _day(when: Any) -> str:
    return NA if pd.isna(when) else f"{pd.Timestamp(when):%Y-%m-%d %H:%M}"


def partition_table(frame: pd.DataFrame) -> pd.DataFrame:
    """storage_frame's partitions as the table shows them: range in UTC, status in colour, rows, size in units."""
    return pd.DataFrame({
        "partition": frame["name"],
        "from (UTC)": [_day(t) for t in frame["start"]],
        "to (UTC)": [_day(t) for t in frame["end"]],
        "status": [shard_label(s) for s in frame["status"]],
        "rows (estimate)": [NA if pd.isna(n) else fmt_count(int(n)) for n in frame["row_estimate"]],
        "size": [fmt_bytes(int(n)) for n in frame["size_bytes"]],
    })


@dataclass(frozen=True)
class StorageKpis:
    """The page's headline figures, as shown."""

    partitions: str
    partitions_help: str
    total_size: str
    rows: str
    rows_help: str
    retention: str
    ahead: str
    ahead_help: str
    oldest_row: str
    oldest_help: str
    next_drop: str
    next_drop_help: str
    rollup_size: str
    rollup_rows: str


def storage_kpis(snap: StorageSnapshot, retention_days: int, partitions_ahead: int) -> StorageKpis:
    """The figures over every partition; the next drop is the oldest day's end plus the retention."""
    frame, now = snap.partitions, snap.read_at
    daily = frame[frame["start"].notna()]
    known = frame["row_estimate"].dropna()
    unknown = len(frame) - len(known)
    rows = int(known.sum()) if len(known) else 0
    # with some partitions not analysed, the known rows are a lower bound
    shown_rows = fmt_count(rows) if not unknown else (f"≥ {rows:,d}" if rows else NA)
    rows_help = ("Estimated by PostgreSQL from its last ANALYZE of each partition." if unknown == 0 else
                 f"{unknown} partition(s) hold rows PostgreSQL has not analysed yet, so their count is unknown "
                 "(n/a in the table); the upkeep run analyses them.")
    if daily.empty:
        next_drop, drop_help = NA, "No daily partition yet."
    else:
        oldest = daily.iloc[0]
        due: datetime = pd.Timestamp(oldest["end"]).to_pydatetime() + timedelta(days=retention_days)
        next_drop = "due now" if due <= now else fmt_short(due)
        drop_help = (f"{oldest['name']} (to {_day(oldest['end'])} UTC) passes the {retention_days}-day retention "
                     f"at {fmt_when(due)}; the first upkeep run after that drops it (every MAINTENANCE_INTERVAL_S).")
    future = int((frame["status"] == "future").sum())
    return StorageKpis(
        partitions=fmt_count(len(frame)),
        partitions_help=f"{len(daily)} daily partition(s) and the DEFAULT one (rows outside every day's range).",
        total_size=fmt_bytes(int(frame["size_bytes"].sum())),
        rows=shown_rows,
        rows_help=rows_help,
        retention=f"{retention_days} day{'s' if retention_days != 1 else ''}",
        ahead=fmt_count(partitions_ahead),
        ahead_help=(f"PARTITIONS_AHEAD: days made ahead of today so a write never waits for a partition; "
                    f"{future} exist now."),
        oldest_row=fmt_short(snap.oldest_row),
        oldest_help=("No metrics row yet." if snap.oldest_row is None else
                     f"The oldest metrics row in any partition is from {fmt_when(snap.oldest_row, now)}; nothing "
                     "older is kept."),
        next_drop=next_drop,
        next_drop_help=drop_help,
        rollup_size=fmt_bytes(snap.rollup_size_bytes),
        rollup_rows=fmt_count(snap.rollup_rows),
    )


def size_bars(frame: pd.DataFrame) -> Any | None:
    """Size in MB per partition, one bar per day (and DEFAULT last), coloured by status; None with no partition."""
    if frame.empty:
        return None
    labels = ["DEFAULT" if pd.isna(t) else f"{pd.Timestamp(t):%Y-%m-%d}" for t in frame["start"]]
    shown = frame.assign(label=labels, mb=frame["size_bytes"] / MB)
    fig = go.Figure()
    for status in SHARD_STATUSES:
        group = shown[shown["status"] == status]
        if group.empty:
            continue
        fig.add_trace(go.Bar(
            x=group["label"].tolist(), y=group["mb"].round(3).tolist(), name=status,
            marker={"color": SHARD_COLOURS[status]},
            customdata=[[n, fmt_bytes(int(b)), NA if pd.isna(r) else fmt_count(int(r))]
                        for n, b, r in zip(group["name"], group["size_bytes"], group["row_estimate"], strict=True)],
            hovertemplate=f"<b>%{{customdata[0]}}</b> ({status})<br>%{{customdata[1]}}, rows %{{customdata[2]}}"
                          "<extra></extra>",
        ))
    fig.update_layout(
        title={"text": "Size per partition"}, height=340, margin={"l": 10, "r": 10, "t": 48, "b": 10},
        legend=LEGEND_BELOW,
        uirevision="live", bargap=0.25,
        xaxis={"title": {"text": "day (UTC)"}, "type": "category", "categoryorder": "array", "categoryarray": labels},
        yaxis={"title": {"text": "size (MB)"}, "rangemode": "tozero", "ticksuffix": " MB"},
    )
    return fig


# -- the outage banner (GET /api/health), on every page -----------------------------------------------------------


@dataclass(frozen=True)
class HealthProbe:
    """One GET /api/health: its report as JSON (the 503 of a database outage included), or why there is none.

    The report is read as plain JSON: the banner must never break a page, whatever a part holds.
    """

    report: dict[str, Any] | None
    answered: bool = True  # False: no connection, a timeout, or API_URL is no URL
    status: int | None = None  # HTTP status of an error answer
    error: str | None = None


@dataclass(frozen=True)
class Banner:
    """What the banner says, and whether as an error or a warning."""

    level: str  # "error" | "warning"
    text: str


@st.cache_data(ttl=HEALTH_TTL_S, show_spinner=False)
def probe_health(url: str) -> HealthProbe:
    """GET /api/health at `url` (no token, a short timeout), cached a couple of seconds across sessions."""
    try:
        report = api.ApiClient(url, timeout=HEALTH_TIMEOUT_S).health()
    except api.ApiCallFailed as exc:
        return HealthProbe(None, exc.status is not None, exc.status, exc.error)
    except httpx.InvalidURL as exc:
        return HealthProbe(None, False, None, str(exc))
    except ValueError:  # a 2xx or 503 that is not JSON: something else listens there
        return HealthProbe(None, True, None, "the answer is not JSON")
    return HealthProbe(api.plain(report))


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _time(value: Any) -> datetime | None:
    """An ISO time from the report; None if absent or unreadable (the banner must never break a page)."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _count(value: Any) -> str:
    return fmt_count(value) if isinstance(value, int) else NA


def outage_banner(probe: HealthProbe, url: str, now: datetime) -> Banner | None:
    """The banner for a health probe: the database down or refusing writes (error), the API unreachable or
    failing (warning); None when all is well (or the API only limits our rate)."""
    report = probe.report
    if report is None:
        if not probe.answered:
            return Banner("warning", f"Engine API unreachable at {url}: live figures and every button need it; "
                                     "what the pages read from the database is still shown.")
        if probe.status == 429:
            return None
        status = f" with HTTP {probe.status}" if probe.status is not None else ""
        return Banner("warning", f"Engine API at {url} answered its health check{status}: "
                                 f"{_first_line(probe.error or 'no report')}")
    database = report.get("database") or {}
    writer = report.get("writer") or {}
    down = database.get("status") == "down"
    if not down and writer.get("databaseOk", True):
        return None
    since_at = _time(writer.get("lastSuccess"))
    what = "Database unreachable" if down else "Database refusing writes"
    if since_at is not None:
        since = f"since {fmt_when(since_at, now)} (the last successful write, {fmt_ago(since_at, now)})"
    else:
        started = _time((report.get("engine") or {}).get("startedAt"))
        since = ("since the engine started" + (f" at {fmt_when(started, now)}" if started else "")
                 + " (no write has succeeded yet)")
    text = (f"**{what}** {since} — the engine keeps checking and routing; "
            f"{_count(writer.get('pending'))} events buffered ({_count(writer.get('dropped'))} dropped).")
    error = writer.get("lastError") or database.get("error")
    if error:
        text += "  \nLast error: `" + _first_line(str(error)).replace("`", "'") + "`"
    return Banner("error", text)


def show_outage_banner() -> None:
    """Draw the banner for the API at ui.api.api_url(), or an empty slot when all is well."""
    url = api.api_url()
    banner = outage_banner(probe_health(url), url, datetime.now(UTC))
    # always one element in the same place, empty or not: a banner that is simply not drawn again is left on
    # screen, stale, when this fragment's run coalesces with a page fragment's (Streamlit prunes the wrong one)
    slot = st.empty()
    if banner is None:
        return
    if banner.level == "error":
        slot.error(banner.text, icon=":material/database_off:")
    else:
        slot.warning(banner.text, icon=":material/cloud_off:")
