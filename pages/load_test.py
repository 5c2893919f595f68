"""Load Test: start and stop an open-model load test (operators), watch it live, read its results, compare runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
import streamlit as st

from contract.loadtest import LoadTestOut
from db import queries
from ui import api, data, forms, login, session
from ui import load_test as lt
from ui.format import (
    NA,
    fmt_count,
    fmt_ms,
    fmt_pct,
    fmt_rps,
    fmt_seconds,
    load_test_label,
)
from ui.session import Role

RUNNING_REFRESH_S = 1
IDLE_REFRESH_S = 5
HISTORY_LIMIT = 50
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
DEFAULT_PATH = "/work?ms=20"
NEWEST_KEY = "_lt_newest"

login.require_login()
CAN_ACT = session.can(Role.OPERATOR)
ACT_HELP = session.needs(Role.OPERATOR)
st.title("Load Test")
data.show_flash()
st.caption("Requests go out at a fixed rate whatever the answers take (an open model, like wrk2 and k6's "
           "constant-arrival-rate), through the engine's router. Corrected latency counts from when a request was "
           "due, so waiting for a free user shows up in it; uncorrected counts from when it was sent.")


def signature(status: LoadTestOut | None) -> tuple[int | None, str] | None:
    """What, when it changes, redraws the whole page: which run the engine holds and its status."""
    return None if status is None else (status.id, str(status.status))


def target_of(s: LoadTestOut) -> str:
    """"orders GET /work?ms=20"."""
    return f"{s.targetService or NA} {s.method} {s.path or '/'}"


def started_at(s: LoadTestOut) -> datetime:
    """When the run started (a stored or running run always has a start time)."""
    return datetime.fromisoformat(s.startTime or "")


def corrected_p99(s: LoadTestOut) -> float | None:
    """The run's corrected p99 so far, ms; None when unknown."""
    return None if s.latency is None else s.latency.corrected.p99


def run_label(s: LoadTestOut) -> str:
    """One run in a selector: only what never changes (a selectbox keeps the label its value was chosen by)."""
    return (f"#{s.id} · {target_of(s)} · {fmt_rps(s.requestsPerSecond)} for {s.duration or 0:g} s · "
            f"started {started_at(s):%m-%d %H:%M:%S} UTC")


def start_form(services: list[str], running_id: int | None) -> None:
    """POST /api/load-test/start with the form's values; the API checks them (and its MAX_* limits)."""
    blocked = ACT_HELP or (f"Load test #{running_id} is running; stop it first." if running_id is not None else None)
    if not services:
        st.info("No services registered yet, so nothing to load. Register one on the Services page.")
    with st.form("lt-form", border=False):
        top = st.columns(3)
        users = top[0].number_input(
            "Concurrent users", 1, 1_000_000, 10, 1, key="lt-users",
            help="At most this many requests in flight. A request due while all are busy waits in a backlog "
                 "(1 s of requests); past that it is dropped and counted.")
        rate = top[1].number_input("Requests / s", 0.1, 1_000_000.0, 50.0, 10.0, format="%g", key="lt-rate",
                                 help="The rate requests are sent at, answered or not.")
        duration = top[2].number_input("Duration (s)", 1, 1_000_000, 30, 5, key="lt-duration")
        bottom = st.columns([1, 2, 1])
        service = bottom[0].selectbox("Target service", services, key="lt-service",
                                 help="Requests go through the router: balancer, breaker and retries apply.")
        path = bottom[1].text_input(
            "Path", DEFAULT_PATH, key="lt-path",
            help="Path and query sent to the service. The demo services answer /work?ms=<median ms>&cpu=<ms of "
                 "CPU per request>; another service needs one of its own paths.")
        method = bottom[2].selectbox("Method", METHODS, key="lt-method")
        submitted = st.form_submit_button("Start", type="primary", key="lt-start", icon=":material/play_arrow:",
                                          disabled=bool(blocked) or not services, help=blocked)
    if submitted:
        body = forms.load_test_body(int(users), float(rate), float(duration), service, path, method or "GET")
        data.act(lambda: api.start_load_test(body),
                 lambda r: f"Load test #{r.id} started: {fmt_rps(r.requestsPerSecond)} for {r.duration or 0:g} s "
                           f"against {target_of(r)}.",
                 reset=("lt-run",))


def show_status(s: LoadTestOut) -> None:
    """Where the run is: status, rates, counts, in flight and backlog (n/a when unknown)."""
    rows = [st.columns(4) for _ in range(3)]
    (a, b, c, d), (e, f, g, h), (i, j, k, m) = rows
    with a.container(key="lt-status"):  # smaller type: "interrupted" and its emoji fit a quarter of the page
        st.metric("Status", load_test_label(s.status), border=True)
    b.metric("Requested rate", fmt_rps(s.requestsPerSecond), border=True)
    c.metric("Achieved rate", fmt_rps(s.achievedRps), border=True,
             help="Requests sent over the elapsed time.")
    d.metric("Shortfall", fmt_pct(s.shortfallPercent), border=True,
             help="How far the achieved rate fell below the requested one.")
    e.metric("Elapsed", f"{fmt_seconds(s.elapsedSeconds)} of {s.duration or 0:g} s", border=True)
    f.metric("Answered", fmt_count(s.totalRequests), border=True, help="Requests that got an outcome.")
    g.metric("Successful", fmt_count(s.successfulRequests), border=True, help="Answered below HTTP 400.")
    h.metric("Failed", fmt_count(s.failedRequests), border=True,
             help="4xx/5xx answers, timeouts, connection errors, open breaker, no instance.")
    i.metric("Dropped", fmt_count(s.droppedRequests), border=True,
             help="Never sent: every user busy and the backlog full.")
    j.metric("In flight", fmt_count(s.inFlight), border=True, help="Sent and not answered yet.")
    k.metric("Backlog", fmt_count(s.backlog), border=True, help="Due, waiting for a free user.")
    m.metric("p99 (corrected)", fmt_ms(corrected_p99(s)), border=True, help="Over the whole run so far.")


def show_shape(s: LoadTestOut) -> None:
    """The staged rate, rotating requests and route key of a run that had them, in an expander."""
    if not (s.stages or s.requests or s.routeKey):
        return
    with st.expander("Stages and requests"):
        if s.stages:
            st.dataframe(pd.DataFrame({
                "stage": range(1, len(s.stages) + 1),
                "from req/s": [s.startRps or 0.0, *(x.targetRps for x in s.stages[:-1])],
                "to req/s": [x.targetRps for x in s.stages],
                "seconds": [x.durationS for x in s.stages],
            }), hide_index=True, key="lt-stages")
        if s.requests:
            st.dataframe(pd.DataFrame({
                "method": [r.method for r in s.requests], "path": [r.path for r in s.requests],
                "headers": [len(r.headers) for r in s.requests],
                "body bytes": [len((r.body or "").encode()) for r in s.requests],
            }), hide_index=True, key="lt-requests")
        if s.routeKey:
            st.caption(f"X-Route-Key: `{s.routeKey}`")


def show_charts(s: LoadTestOut, samples: pd.DataFrame, uncorrected: bool) -> None:
    """Per-second rate, errors and latency of the run."""
    if samples.empty:
        st.info("No per-second samples yet: the first one is stored a second after the start.")
        return
    left, right = st.columns(2)
    rate = lt.load_test_rate(samples, s.requestsPerSecond, s.duration, s.stages, s.startRps)
    left.plotly_chart(rate, key="lt-rate-chart")
    right.plotly_chart(lt.load_test_errors(samples), key="lt-errors-chart")
    latency = lt.load_test_latency(samples, uncorrected=uncorrected)
    if latency is None:
        st.info("No latency yet: no request has been answered.")
    else:
        st.plotly_chart(latency, key="lt-latency-chart")


def show_results(s: LoadTestOut, samples: pd.DataFrame) -> None:
    """Whole-run latency (corrected and uncorrected), errors by kind, and the per-second samples as CSV."""
    left, right = st.columns(2)
    with left:
        st.markdown("**Latency over the whole run**")
        st.dataframe(lt.latency_table(s.latency), hide_index=True, placeholder=NA, key="lt-latency-table",
                     column_config={
                         "corrected ms": st.column_config.NumberColumn(format="%.2f", help="From the due time"),
                         "uncorrected ms": st.column_config.NumberColumn(format="%.2f", help="From the send time"),
                     })
    with right:
        st.markdown("**Errors by kind**")
        errors = lt.error_table(s.errors, s.totalRequests)
        if errors.empty:
            st.info("No request failed." if s.errors is not None else "Errors not known yet.")
        else:
            st.dataframe(errors, hide_index=True, placeholder=NA, key="lt-errors-table", column_config={
                "share %": st.column_config.NumberColumn(format="%.1f", help="Of the answered requests")})
        st.download_button(
            "Download per-second CSV", samples.to_csv(index=False), file_name=f"load-test-{s.id}.csv",
            mime="text/csv", on_click="ignore", key="lt-download", icon=":material/download:",
            disabled=samples.empty, width="stretch")


def show_run(run_id: int | None, known: tuple[int | None, str] | None, uncorrected: bool) -> None:
    """The viewed run, live: from the engine while it runs (in flight, backlog), else from PostgreSQL."""
    live = data.fetch_quietly(api.load_test_status)
    if signature(live) != known:
        st.rerun()  # a run started or ended: the form, the selectors and the history change too
    if live is not None and live.status == "running":
        left, right = st.columns([3, 1], vertical_alignment="center")
        duration = live.duration or 0.0
        left.progress(min(1.0, (live.elapsedSeconds or 0.0) / duration) if duration else 0.0,
                      text=f"Load test #{live.id} running: {fmt_seconds(live.elapsedSeconds)} of {duration:g} s")
        if right.button(f"Stop #{live.id}", key="lt-stop", icon=":material/stop:", type="primary",
                        disabled=not CAN_ACT, help=ACT_HELP or "End the run now (within a second)", width="stretch"):
            data.act(api.stop_load_test,
                     lambda r: f"Load test #{r.id} {r.status}: {fmt_count(r.totalRequests)} answered, "
                               f"{fmt_count(r.failedRequests)} failed, {fmt_count(r.droppedRequests)} dropped.")
    if run_id is None:
        st.info("No load test has run yet. Start one above.")
        return
    with data.reading() as db_session:
        row = queries.load_test(db_session, run_id)
        samples = queries.load_test_samples_frame(db_session, run_id)
        stored = None if row is None else lt.stored_run(row)
    if stored is None:
        st.info(f"Load test #{run_id} is no longer stored.")
        return
    s = live if live is not None and live.id == run_id else stored
    st.markdown(f"**#{s.id}** · {target_of(s)} · {fmt_count(s.concurrentUsers)} users · "
                f"{fmt_count(s.workers)} process(es) · started {started_at(s):%H:%M:%S} UTC")
    show_status(s)
    show_shape(s)
    show_charts(s, samples, uncorrected)
    show_results(s, samples)
    refresh = RUNNING_REFRESH_S if s.status == "running" else IDLE_REFRESH_S
    partial = " · the last second of a stopped run is partial" if s.status in ("stopped", "interrupted") else ""
    st.caption(f"{'From the engine' if s is live else 'From the database'}{partial} · refreshes every "
               f"{refresh} s")


def history_table(runs: Sequence[LoadTestOut]) -> pd.DataFrame:
    """Stored runs, newest first, as the columns the table shows."""
    return pd.DataFrame({
        "id": [r.id for r in runs],
        "status": [load_test_label(r.status) for r in runs],
        "started": data.utc_times([r.startTime for r in runs]),
        "target": [target_of(r) for r in runs],
        "users": [r.concurrentUsers for r in runs],
        "requested req/s": [r.requestsPerSecond for r in runs],
        "achieved req/s": [r.achievedRps for r in runs],
        "shortfall %": [r.shortfallPercent for r in runs],
        "duration s": [r.duration for r in runs],
        "answered": [r.totalRequests for r in runs],
        "failed": [r.failedRequests for r in runs],
        "dropped": [r.droppedRequests for r in runs],
        "p99 corrected ms": [corrected_p99(r) for r in runs],
    }).astype({"achieved req/s": float, "shortfall %": float, "p99 corrected ms": float})


def show_history() -> None:
    """The stored runs, newest first (live: a running run's totals grow)."""
    with data.reading() as db_session:
        runs = [lt.stored_run(r) for r in queries.load_tests(db_session, HISTORY_LIMIT)]
    if not runs:
        st.info("No load tests yet.")
        return
    st.dataframe(history_table(runs), hide_index=True, placeholder=NA, key="lt-history", column_config={
        "started": st.column_config.DatetimeColumn("started (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "achieved req/s": st.column_config.NumberColumn(format="%.1f"),
        "shortfall %": st.column_config.NumberColumn(format="%.1f"),
        "p99 corrected ms": st.column_config.NumberColumn(format="%.1f"),
    })
    st.caption(f"The last {len(runs)} run(s), newest first, at most {HISTORY_LIMIT}.")


FOLLOWING = (("lt-run", 0), ("lt-compare-b", 0), ("lt-compare-a", 1))  # selector key, position in newest first


def follow_newest(ids: list[int]) -> None:
    """Keep the run selector on the newest run, and the comparison on the newest two, while a newer run appears,
    unless the user chose another: each selector without a valid choice (a first visit, a run just started here)
    or on the run that held its position before moves to the run now there.

    Choices are set, not dropped: a browser shows the value it last sent until the server sets another.
    """
    before: list[int] = st.session_state.get(NEWEST_KEY) or []
    for key, i in FOLLOWING:
        if i >= len(ids):
            continue
        current = st.session_state.get(key)
        was = before[i] if i < len(before) else None
        if current not in ids or (ids[i] != was and current == was):
            st.session_state[key] = ids[i]
    st.session_state[NEWEST_KEY] = ids[:2]


def compare(runs: dict[int, LoadTestOut]) -> None:
    """Two runs' sent/s and corrected p99 per second on the same axes."""
    ids = list(runs)
    if len(ids) < 2:
        st.info("Two runs are needed to compare.")
        return
    left, right = st.columns(2)
    # follow_newest puts A on the second newest run and B on the newest
    a = left.selectbox("Run A", ids, key="lt-compare-a", format_func=lambda i: run_label(runs[i]))
    b = right.selectbox("Run B", ids, key="lt-compare-b", format_func=lambda i: run_label(runs[i]))
    if a is None or b is None or a == b:
        st.info("Pick two different runs.")
        return
    with data.reading() as db_session:
        pairs = [(f"#{i}", queries.load_test_samples_frame(db_session, i)) for i in (a, b)]
    fig = lt.load_test_overlay(pairs)
    if fig is None:
        st.info("Neither run has per-second samples.")
    else:
        st.plotly_chart(fig, key="lt-overlay")


initial = data.fetch_or_none(api.load_test_status, page=True)
running_id = initial.id if initial is not None and initial.status == "running" else None
with data.reading(page=True) as db_session:
    names = [s.name for s in queries.service_briefs(db_session)]
    history = {r.id: lt.stored_run(r) for r in queries.load_tests(db_session, HISTORY_LIMIT)}

with st.expander("New load test", icon=":material/speed:", expanded=running_id is None):
    start_form(names, running_id)

st.subheader("Run")
follow_newest(list(history))
left, right = st.columns([4, 1], vertical_alignment="bottom")
chosen = left.selectbox("Run", list(history), key="lt-run", format_func=lambda i: run_label(history[i]),
                        placeholder="no runs yet")
with_uncorrected = right.toggle("Uncorrected too", True, key="lt-uncorrected",
                                help="Draw the uncorrected percentiles (from the send time) dashed.")
viewed_running = chosen is not None and history[chosen].status == "running"
refresh = RUNNING_REFRESH_S if running_id is not None or viewed_running else IDLE_REFRESH_S
st.fragment(run_every=refresh)(show_run)(chosen, signature(initial), with_uncorrected)

st.subheader("History")
st.fragment(run_every=refresh)(show_history)()

st.subheader("Compare two runs")
compare(history)
