"""Page plumbing: a cached session factory from DATABASE_URL, guarded reads, shaped values, API calls."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar

import pandas as pd
import streamlit as st
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from contract.errors import DatabaseError
from contract.traffic import PickOut
from db.session import make_reader_engine, make_session_factory
from ui import api
from ui import session as auth  # "session" is a database session here
from ui.api import ApiCallFailed

__all__ = [
    "RETRY_S",
    "UNAVAILABLE",
    "ServiceSummary",
    "act",
    "breaker_segments",
    "fetch",
    "fetch_or_none",
    "fetch_quietly",
    "flash",
    "labelled",
    "picks_frame",
    "reading",
    "session_factory",
    "show_flash",
    "timeline_start",
    "utc_times",
    "value_or_none",
]

NO_DATABASE = (
    "DATABASE_URL is not set, so the dashboard cannot find the database. The dashboard is started together "
    "with the engine by `python -m engine up` (or `make run`), which passes it the database URL; "
    "to run it on its own, set DATABASE_URL to the engine's PostgreSQL URL."
)
RETRY_S = 5  # how often a page whose first read failed checks whether the database or the API answers again
UNAVAILABLE = {None, 502, 503, 504}  # ApiCallFailed statuses that mean "try again later" (None: no answer)
_FLASH_KEY = "_mm_flash"
_RESET_KEY = "_mm_reset"
T = TypeVar("T")


def _dispose(factory: sessionmaker[Session]) -> None:
    bind = factory.kw.get("bind")
    if bind is not None:
        bind.dispose()


@st.cache_resource(show_spinner=False, on_release=_dispose)
def _sessions_for(url: str) -> sessionmaker[Session]:
    # a small pool: the dashboard reads a few queries per refresh; it cannot write (a read-only role)
    return make_session_factory(make_reader_engine(url, pool_size=2, max_overflow=3))


def session_factory() -> sessionmaker[Session]:
    """The session factory for env DATABASE_URL (one engine per URL per process); stops the page if unset."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        st.error(NO_DATABASE)
        st.stop()
    try:
        return _sessions_for(url)
    except DatabaseError as exc:
        st.error(f"DATABASE_URL cannot be used: {exc}")
        st.stop()


def _database_answers() -> bool:
    try:
        with session_factory()() as session:
            session.execute(text("SELECT 1"))
    except (OperationalError, InterfaceError):
        return False
    return True


def _api_answers() -> bool:
    """The engine answers and its database is up (most of what the API serves needs both)."""
    try:
        report = api.health()  # 200, or 503 with the same report while the engine's database is down
    except ApiCallFailed:
        return False
    return report.database.status == "up"


def _rerun_when(answers: Callable[[], bool]) -> None:
    """Check every RETRY_S s, in a fragment of its own, and run the whole page again once `answers()` holds."""

    def check() -> None:
        if answers():
            st.rerun(scope="app")

    st.fragment(run_every=RETRY_S)(check)()


def _retry_note(page: bool) -> str:
    return f"This page tries again every {RETRY_S} s." if page else "The page retries on its next refresh."


@contextmanager
def reading(*, page: bool = False) -> Iterator[Session]:
    """A read-only session; if the database is unreachable, say so and stop this run.

    Inside a live fragment its next refresh retries; a read at the top of a page (`page=True`) leaves a small
    fragment behind that checks every RETRY_S s and runs the page again once the database answers.
    """
    factory = session_factory()
    try:
        with factory() as session:
            yield session
    except (OperationalError, InterfaceError) as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        st.error(f"The database is not reachable ({reason}). {_retry_note(page)}")
        if page:
            _rerun_when(_database_answers)
        st.stop()


def flash(message: str) -> None:
    """Keep a success message to show after the coming st.rerun()."""
    st.session_state.setdefault(_FLASH_KEY, []).append(message)


def show_flash() -> None:
    """Show (once) the messages kept by flash(), and reset widgets act() was told to; call before any widget."""
    for key in st.session_state.pop(_RESET_KEY, []):
        st.session_state.pop(key, None)
    for message in st.session_state.pop(_FLASH_KEY, []):
        st.success(message)


def _session_expired() -> NoReturn:
    """The API answered 401 to our token: forget the login and rerun into the login form, which says why."""
    auth.expire()
    st.rerun()


def labelled(exc: ApiCallFailed, labels: Mapping[str, str]) -> ApiCallFailed:
    """The error with each detail's field named as the form names it: "Window (s) (windowSeconds)"; a nested field
    ("config.url") by its full name, else by its first part."""
    details = []
    for d in exc.details:
        field = d.get("field")
        label = labels.get(field) or labels.get(field.split(".")[0].split("[")[0]) if isinstance(field, str) else None
        details.append({**d, "field": f"{label} ({field})"} if label is not None else d)
    return ApiCallFailed(exc.status, exc.error, details, exc.retry_after)


def act(
    call: Callable[[], T],
    success: Callable[[T], str],
    reset: Sequence[str] = (),
    *,
    toast: bool = False,
    labels: Mapping[str, str] | None = None,
) -> None:
    """Call the API; on success keep a message, reset the given widget keys and rerun; on an API error show it.

    A 401 means the token expired or is no longer valid: the session is cleared and the login form asks again.
    `toast` shows the error as a toast: for a button in a fragment redrawn every second, where st.error would
    vanish before it is read. `labels` (API field -> form label) names a wrong field as the form does.
    """
    try:
        result = call()
    except ApiCallFailed as exc:
        if exc.status == 401:
            _session_expired()
        if labels:
            exc = labelled(exc, labels)
        if toast:
            st.toast(exc.text(), icon=":material/error:")
        else:
            st.error(exc.text())
        return
    flash(success(result))
    st.session_state.setdefault(_RESET_KEY, []).extend(reset)
    st.rerun()


def delete_form(key: str, noun: str, names: Mapping[int, str], consequence: str, delete: Callable[[int], Any], *,
                label: Callable[[int], str] | None = None, disabled: bool = False, why: str | None = None) -> None:
    """A delete that asks first: pick one of `names` (by id), tick the confirmation (`consequence` says what
    follows), press the button; nothing is deleted without the tick. Widget keys start with `key`."""
    with st.form(f"{key}-delete", border=False, clear_on_submit=True):
        chosen = st.selectbox(noun.capitalize(), list(names), format_func=label or names.__getitem__,
                              key=f"{key}-delete-pick")
        confirm = st.checkbox(f"Yes, delete this {noun}", key=f"{key}-delete-confirm", help=consequence)
        go = st.form_submit_button(f"Delete {noun}", key=f"{key}-delete-submit", disabled=disabled, help=why)
    if go and chosen is not None:
        if not confirm:
            st.warning(f"Tick the confirmation box to delete the {noun}.")
            return
        act(lambda: delete(chosen), lambda _: f"{noun.capitalize()} {names[chosen]} deleted.")


def _show_api_error(exc: ApiCallFailed, page: bool) -> None:
    """The API's error; when it could not answer (down, or its database down) a note that the page retries, and
    for a read at the top of a page the fragment that runs it again once the API answers."""
    if exc.status == 401:
        _session_expired()
    if exc.status not in UNAVAILABLE:
        st.error(exc.text())
        return
    st.error(f"{exc.text()} {_retry_note(page)}")
    if page:
        _rerun_when(_api_answers)


def fetch(call: Callable[[], T], *, page: bool = False) -> T:
    """Read through the API; an error is shown and stops this run (a 401 logs out, as in act()); `page=True` for a
    read at the top of a page, which then runs again by itself once the API answers."""
    try:
        return call()
    except ApiCallFailed as exc:
        _show_api_error(exc, page)
        st.stop()


def fetch_or_none(call: Callable[[], T], *, page: bool = False) -> T | None:
    """Read through the API; an error is shown and None returned, so the rest of the page still draws; `page` as
    in fetch()."""
    try:
        return call()
    except ApiCallFailed as exc:
        _show_api_error(exc, page)
        return None


def fetch_quietly(call: Callable[[], T]) -> T | None:
    """Read through the API; None on an error, shown nowhere (a 401 still logs out): for a part redrawn every
    second, whose page already showed the error once."""
    try:
        return call()
    except ApiCallFailed as exc:
        if exc.status == 401:
            _session_expired()
        return None


@dataclass(frozen=True)
class ServiceSummary:
    """One service as the pages show it: registry settings plus instance counts from the latest checks."""

    id: int
    name: str
    status: str
    managed: bool
    weight: int
    health_path: str
    metrics_path: str | None
    urls: tuple[str, ...]
    instance_count: int
    healthy_count: int
    last_check: datetime | None

    def as_api(self) -> dict[str, Any]:
        """The fields the edit form compares against, with the API's names."""
        return {
            "name": self.name,
            "healthPath": self.health_path,
            "metricsPath": self.metrics_path,
            "weight": self.weight,
            "instances": list(self.urls),
        }


def utc_times(values: Sequence[str | None]) -> pd.DatetimeIndex:
    """ISO times from an API answer as UTC timestamps, NaT where None."""
    return pd.to_datetime(pd.Index(list(values), dtype=object), utc=True)


def value_or_none(v: Any) -> Any:
    """None for pandas' missing markers (NaN, NaT, NA), else the value."""
    return None if v is None or (not isinstance(v, list | tuple | dict) and pd.isna(v)) else v


PICKS_COLUMNS = ["service", "instance_id", "url", "health", "ejected", "picks", "in_flight", "share"]


def picks_frame(instances: Sequence[PickOut]) -> pd.DataFrame:
    """GET /api/load-balancer `instances` as a frame; `share` is the % of its service's picks (NaN if none yet)."""
    frame = pd.DataFrame(
        [[i.service, i.instanceId, i.url, str(i.health), i.ejected, i.picks, i.inFlight] for i in instances],
        columns=PICKS_COLUMNS[:-1],
    )
    totals = frame.groupby("service")["picks"].transform("sum")
    frame["share"] = (100.0 * frame["picks"] / totals.where(totals > 0)).astype(float)
    return frame


SEGMENT_COLUMNS = ["service", "state", "start", "end", "reason"]


def breaker_segments(transitions: pd.DataFrame, since: datetime, now: datetime) -> pd.DataFrame:
    """db.queries.breaker_transitions as time spans in one state per service, from `since` to `now`.

    The span before a service's first transition in the window is in that transition's from_state; the last
    span runs to `now`. `reason` is why the span began ("" for the first). Services with no transition in
    the window have no spans (their state is not known from the table).
    """
    rows: list[list[Any]] = []
    for service, group in transitions.sort_values(["at"], kind="stable").groupby("service_name", sort=True):
        start, state, reason = since, str(group["from_state"].iloc[0]), ""
        for when, to_state, why in zip(group["at"], group["to_state"], group["reason"], strict=True):
            at: datetime = pd.Timestamp(when).to_pydatetime()
            if at > start:
                rows.append([service, state, start, at, reason])
            start, state, reason = max(start, at), str(to_state), str(why)
        rows.append([service, state, start, max(now, start + timedelta(milliseconds=1)), reason])
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


def timeline_start(transitions: pd.DataFrame, since: datetime, now: datetime) -> datetime:
    """Where a timeline's time axis starts: a little before the first transition, never before `since`.

    The span before the first transition says only that nothing changed; the axis zooms onto the changes.
    """
    if transitions.empty:
        return since
    first: datetime = pd.Timestamp(transitions["at"].min()).to_pydatetime()
    pad = max(timedelta(minutes=1), (now - first) / 10)
    return max(since, first - pad)
