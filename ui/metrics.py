"""The Metrics page's controls and data: the chart window and its bucket, the range, services, percentiles and
event kinds chosen, cached reads, and the CSV of exactly the frame charted (the figures are in ui.metric_charts)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from db import queries, series
from db.annotations import LIMIT, Annotations, metric_service_names, read_annotations
from ui import data
from ui.format import status_emoji

__all__ = [
    "CUSTOM",
    "EVENT_KINDS",
    "PERCENTILES",
    "RANGES",
    "Reading",
    "Selection",
    "Window",
    "clear_cache",
    "controls",
    "csv_name",
    "custom_window",
    "floor_time",
    "fmt_range",
    "fmt_step",
    "preset_window",
    "read_window",
    "refresh_s",
    "row_spacing",
    "series_csv",
    "service_choices",
    "service_label",
    "wait_for_database",
]

MAX_POINTS = 2000  # buckets per service per chart, whatever the range
RANGES: dict[str, timedelta] = {"5 min": timedelta(minutes=5), "15 min": timedelta(minutes=15),
                                "1 h": timedelta(hours=1), "6 h": timedelta(hours=6), "24 h": timedelta(hours=24),
                                "7 d": timedelta(days=7)}
CUSTOM = "Custom"
DEFAULT_RANGE = "1 h"
MAX_DEFAULT_SERVICES = 20
SETTLE = timedelta(seconds=3)  # a bucket's last rows reach the database within the writer's flush after it closes
CACHE_S = 60  # late rows (a database outage's backlog) show within a minute even where the window stands still
CHOICES_CACHE_S = 30
RETRY_S = 5
PERCENTILES: dict[str, str] = {"p50": "latency_p50_ms", "p95": "latency_p95_ms", "p99": "latency_p99_ms",
                               "avg": "latency_avg_ms"}
EVENT_KINDS: dict[str, str] = {"breakers": "Breaker transitions", "simulations": "Failure simulations",
                               "scaling": "Scaling", "load_tests": "Load tests"}
EVENT_LIMIT = LIMIT


# -- the window ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A chart range [start, end) and the bucket width db.series.metric_series reads it with."""

    start: datetime
    end: datetime
    step: int

    @property
    def buckets(self) -> int:
        """Buckets per service in the window."""
        return math.ceil((self.end - self.start).total_seconds() / self.step)


def floor_time(t: datetime, step: int) -> datetime:
    """`t` down to a multiple of `step` seconds since the epoch (bins align to UTC, as db.series's do)."""
    return datetime.fromtimestamp(math.floor(t.timestamp() / step) * step, UTC)


def _ceil(t: datetime, step: int) -> datetime:
    return datetime.fromtimestamp(math.ceil(t.timestamp() / step) * step, UTC)


def _step(start: datetime, end: datetime, min_step: float) -> int:
    return series.pick_step(start, end, MAX_POINTS, min_step)


def preset_window(span: timedelta, now: datetime, min_step: float) -> Window:
    """The last `span` up to the newest complete bucket, both ends on bucket boundaries."""
    # a bucket still filling would show too low a rate
    step = _step(now - span, now, min_step)
    end = floor_time(now - SETTLE, step)
    return Window(end - span, end, step)


def custom_window(start: datetime, end: datetime, min_step: float) -> Window:
    """[start, end) widened to whole buckets; the step is the one db.series picks for the widened range."""
    step = _step(start, end, min_step)
    a, b = floor_time(start, step), _ceil(end, step)
    while (wider := _step(a, b, min_step)) != step:  # widening can push the span over the bucket limit
        step = wider
        a, b = floor_time(start, step), _ceil(end, step)
    return Window(a, b, step)


def refresh_s(step: int) -> int:
    """How often the charts re-read: every bucket, between 5 s and a minute."""
    # the minute bounds how long a database outage stays on the page after it ends
    return min(max(step, RETRY_S), 60)


def fmt_range(window: Window) -> str:
    """The window's ends in UTC, with seconds when buckets are shorter than a minute."""
    fmt = "%Y-%m-%d %H:%M:%S" if window.step < 60 else "%Y-%m-%d %H:%M"
    return f"{window.start:{fmt}} to {window.end:{fmt}} UTC"


def fmt_step(step: int) -> str:
    """A bucket width in words: "5 s", "10 min", "1 h", "1 d"."""
    for unit, seconds in (("d", 86400), ("h", 3600), ("min", 60)):
        if step >= seconds and step % seconds == 0:
            return f"{step // seconds} {unit}"
    return f"{step} s"


@dataclass(frozen=True)
class Selection:
    """What the controls chose: services, a range (custom: its UTC ends), latency percentiles, event kinds."""

    services: tuple[str, ...]
    range_label: str
    custom: tuple[datetime, datetime] | None
    percentiles: tuple[str, ...]
    kinds: tuple[str, ...]

    def window(self, now: datetime, min_step: float) -> Window:
        """The window to read at `now`."""
        if self.custom is not None:
            return custom_window(*self.custom, min_step)
        return preset_window(RANGES[self.range_label], now, min_step)


def _utc(t: datetime) -> datetime:
    """A picker's time, naive, read as UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def controls(choices: dict[str, str | None]) -> Selection | None:
    """The range, services (the first 20 by default), percentiles, event kinds, Refresh; None if a range is wrong."""
    top = st.columns([4, 1], vertical_alignment="bottom")
    label = top[0].segmented_control("Range", [*RANGES, CUSTOM], default=DEFAULT_RANGE, key="mx-range", required=True,
                                     bind="query-params")  # a link can open a range: ?mx-range=7+d
    top[1].button("Refresh", key="mx-refresh", icon=":material/refresh:", on_click=clear_cache, width="stretch",
                  help="Read everything again now; the charts also refresh by themselves.")
    custom = None
    if label == CUSTOM:
        now = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
        st.session_state.setdefault("mx-from", now - timedelta(hours=24))
        st.session_state.setdefault("mx-to", now)
        left, right = st.columns(2)
        start = left.datetime_input("From (UTC)", key="mx-from", step=timedelta(minutes=1))
        end = right.datetime_input("To (UTC)", key="mx-to", step=timedelta(minutes=1))
        if start is None or end is None or _utc(end) <= _utc(start):
            st.error("Choose a start, and an end after it.")
            return None
        custom = (_utc(start), _utc(end))
    names = list(choices)
    services = st.multiselect("Services", names, default=names[:MAX_DEFAULT_SERVICES], key="mx-services",
                              format_func=lambda n: service_label(n, choices[n]), placeholder="Choose services")
    left, right = st.columns(2)
    percentiles = left.pills("Latency", list(PERCENTILES), selection_mode="multi", default=["p95"],
                             key="mx-percentiles", help="One line per service per percentile chosen (p95 alone by "
                                                        "default: 20 services x 3 percentiles is 60 lines); avg is the "
                                                        "request-weighted mean latency.")
    kinds = right.pills("Events on the charts", list(EVENT_KINDS), selection_mode="multi", default=list(EVENT_KINDS),
                        format_func=EVENT_KINDS.__getitem__, key="mx-events")
    return Selection(tuple(services), label if label in RANGES or label == CUSTOM else DEFAULT_RANGE, custom,
                     tuple(p for p in PERCENTILES if p in percentiles), tuple(k for k in EVENT_KINDS if k in kinds))


# -- reads (cached per database URL; the session is only the way in and is not hashed) ----------------------------


def _url() -> str:
    return os.environ.get("DATABASE_URL", "")


@st.cache_data(ttl=CHOICES_CACHE_S, show_spinner=False)
def _choices(_session: Session, url: str) -> dict[str, str | None]:
    registered = {s.name: s.status for s in queries.service_briefs(_session)}
    kept = metric_service_names(_session)
    return {name: registered.get(name) for name in sorted({*registered, *kept})}


def service_choices(*, quiet: bool = False) -> dict[str, str | None] | None:
    """Service name -> health status (None: not registered); None, said, when the database is unreachable."""
    try:
        with data.session_factory()() as db_session:
            return _choices(db_session, _url())
    except (OperationalError, InterfaceError) as exc:
        if not quiet:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
            st.error(f"The database is not reachable ({reason}). This page tries again every {RETRY_S} s.")
        return None


def wait_for_database() -> None:
    """Run every few seconds while the database is out of reach: once it answers, the whole page runs again."""
    if service_choices(quiet=True) is not None:
        st.rerun(scope="app")


def service_label(name: str, status: str | None) -> str:
    """A service as the picker shows it: its health colour, or "not registered"."""
    return f"{name} (not registered)" if status is None else f"{status_emoji(status)} {name}"


@st.cache_data(ttl=CACHE_S, max_entries=32, show_spinner=False)
def _series(_session: Session, url: str, services: tuple[str, ...], start: datetime, end: datetime,
            min_step: float) -> pd.DataFrame:
    return series.metric_series(_session, services, start, end, max_points=MAX_POINTS, min_step=min_step)


@st.cache_data(ttl=CACHE_S, max_entries=32, show_spinner=False)
def _events(_session: Session, url: str, services: tuple[str, ...], start: datetime, end: datetime) -> Annotations:
    return read_annotations(_session, start, end, services)


@dataclass(frozen=True)
class Reading:
    """The window read, its series and events; `spacing` (s) when the buckets were widened to the rows'."""

    window: Window
    frame: pd.DataFrame
    events: Annotations
    spacing: float | None = None


def row_spacing(frame: pd.DataFrame) -> float:
    """The typical time between a service's buckets that have rows, in seconds (0 with fewer than two)."""
    # the median over four steps, divided by four: rows 300 s apart in 120 s buckets (240, 360, 240, ... apart) give 300
    by_service = frame.groupby("service", sort=False)["bucket"]
    for lag in (4, 1):
        gaps = (by_service.diff(periods=lag) / lag).dropna()
        if len(gaps):
            return pd.Timedelta(gaps.median()).total_seconds()
    return 0.0


def read_window(selection: Selection, now: datetime, min_step: float) -> Reading:
    """The chosen window's series and events, cached; buckets are never finer than the rows."""
    # cached per (services, window): the window moves a bucket at a time, so redraws within a bucket read nothing.
    # where rows are further apart than min_step says (collected less often), each line would be loose points with
    # gaps between: the window is read again with buckets as wide as the rows' spacing.
    # an unreachable database is said by data.reading(), which stops this run
    key, url = tuple(selection.services), _url()
    window = selection.window(now, min_step)
    spacing = None
    with data.reading() as db_session:
        frame = _series(db_session, url, key, window.start, window.end, min_step)
        if (measured := row_spacing(frame)) > 1.5 * window.step:
            spacing, window = measured, selection.window(now, measured)
            frame = _series(db_session, url, key, window.start, window.end, measured)
        events = _events(db_session, url, key, window.start, window.end)
    return Reading(window, frame, events, spacing)


def clear_cache() -> None:
    """Forget every cached read of the page (the Refresh button)."""
    _choices.clear()
    _series.clear()
    _events.clear()


# -- the CSV ------------------------------------------------------------------------------------------------------


def csv_name(window: Window) -> str:
    """The download's file name from the window's UTC ends: "metrics-20260101T0000Z-20260108T0000Z.csv"."""
    fmt = "%Y%m%dT%H%MZ" if window.start.second == window.end.second == 0 else "%Y%m%dT%H%M%SZ"
    return f"metrics-{window.start:{fmt}}-{window.end:{fmt}}.csv"


def series_csv(frame: pd.DataFrame) -> bytes:
    """The charted frame as CSV: same rows and columns, the bucket in ISO 8601 UTC, unknown values empty."""
    return frame.assign(bucket=[t.isoformat() for t in frame["bucket"]]).to_csv(index=False).encode()
