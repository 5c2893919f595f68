"""Resilience: circuit breakers (live, reset, thresholds), retry/fallback/timeout figures, breaker transitions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pandas as pd
import streamlit as st

from contract.traffic import BreakerOut
from db import queries
from ui import api, charts, data, forms, login, session
from ui.format import BREAKER_COLOURS, NA, breaker_label, fmt_count, fmt_pct
from ui.session import Role

REFRESH_S = 3
ANY = "any"
WINDOWS = {"15 min": timedelta(minutes=15), "1 h": timedelta(hours=1), "6 h": timedelta(hours=6),
           "24 h": timedelta(hours=24)}
LAST_TRANSITIONS = 20
BUTTONS_PER_ROW = 4

login.require_login()
CAN_ACT = session.can(Role.OPERATOR)
ACT_HELP = session.needs(Role.OPERATOR)
st.title("Resilience")
data.show_flash()


def breaker_table(breakers: Sequence[BreakerOut]) -> pd.DataFrame:
    """GET /api/circuit-breakers `breakers` as the columns the table shows."""
    return pd.DataFrame({
        "service": [b.serviceName for b in breakers],
        "state": [breaker_label(b.state) for b in breakers],
        "failures": [b.failureCount for b in breakers],
        "rejected": [b.rejectedCount for b in breakers],
        "failure rate %": [b.failureRate for b in breakers],
        "last failure": data.utc_times([b.lastFailure for b in breakers]),
        "opens after": [f"{b.failureThreshold} in a row or {b.failureRateThreshold:g} %" for b in breakers],
        "window": [f"{b.windowSize} (min {b.minimumCalls})" for b in breakers],
        "slow call": ["off" if b.slowCallMs is None else f"> {b.slowCallMs:g} ms" for b in breakers],
        "open for": [f"{b.timeout / 1000:g} s, then {b.halfOpenCalls} trial(s)" for b in breakers],
    }).astype({"failure rate %": float})


def _state_style(label: Any) -> str:
    """The state cell tinted with its state's colour."""
    state = str(label).split(" ", 1)[-1]
    colour = BREAKER_COLOURS.get(state)
    return f"background-color: {colour}33" if colour else ""


def reset_buttons(breakers: Sequence[BreakerOut]) -> None:
    """A Reset per breaker and Reset all: POST /api/circuit-breakers/<name>/reset and /reset-all."""
    for start in range(0, len(breakers), BUTTONS_PER_ROW):
        cols = st.columns(BUTTONS_PER_ROW)
        for col, b in zip(cols, breakers[start : start + BUTTONS_PER_ROW], strict=False):
            name = b.serviceName
            if col.button(f"Reset {name}", key=f"bk-reset-{name}", icon=":material/restart_alt:", width="stretch",
                          disabled=not CAN_ACT,
                          help=ACT_HELP or f"Close the {name} breaker and empty its counters"):
                data.act(partial(api.reset_breaker, name), lambda r: f"Breaker {r.serviceName} reset: {r.state}.")
    if st.button("Reset all", key="bk-reset-all", icon=":material/restart_alt:", type="primary",
                 disabled=not CAN_ACT, help=ACT_HELP or "Close every breaker and empty its counters"):
        data.act(api.reset_all_breakers, lambda r: f"{r.message}.")


@st.fragment(run_every=REFRESH_S)
def live_breakers() -> None:
    """Counts by state, the table of breakers and their reset buttons, read from the engine."""
    answer = data.fetch(api.circuit_breakers)
    kpis = st.columns(4)
    kpis[0].metric("Breakers", fmt_count(answer.total), border=True, help="One per registered service.")
    kpis[1].metric("Closed", fmt_count(answer.closed), border=True, help="Calls pass through.")
    kpis[2].metric("Open", fmt_count(answer.open), border=True,
                   help="Calls are refused without reaching the service until the open time passes.")
    kpis[3].metric("Half-open", fmt_count(answer.halfOpen), border=True,
                   help="A few trial calls decide whether the breaker closes again or reopens.")
    breakers = answer.breakers
    if not breakers:
        st.info("No services registered yet, so no breakers. Register one on the Services page.")
        return
    st.dataframe(
        breaker_table(breakers).style.map(_state_style, subset=["state"]),
        hide_index=True,
        placeholder=NA,
        key="bk-table",
        column_config={
            "failures": st.column_config.NumberColumn(width="small", help="Failed calls since the engine started"),
            "rejected": st.column_config.NumberColumn(
                width="small", help="Calls refused while OPEN (or beyond the half-open trials)"),
            "failure rate %": st.column_config.NumberColumn(
                format="%.1f", help="Failures over the calls in the window; n/a before the first call"),
            "last failure": st.column_config.DatetimeColumn(format="MM-DD HH:mm:ss", help="UTC"),
            "opens after": st.column_config.TextColumn(help="Consecutive failures, or failure rate over the window"),
            "window": st.column_config.TextColumn(
                help="Calls the failure rate is taken over (and how many it needs before it counts)"),
            "slow call": st.column_config.TextColumn(width="small", help="Slower calls count as failures"),
            "open for": st.column_config.TextColumn(
                help="How long an open breaker refuses calls, then how many trial calls it lets through (half-open)"),
        },
    )
    reset_buttons(breakers)
    st.caption(f"Live from the engine · refreshes every {REFRESH_S} s")


@st.fragment(run_every=REFRESH_S)
def live_figures() -> None:
    """GET /api/metrics `resilience`: rates over the engine's window; n/a when there was nothing to divide."""
    r = data.fetch(api.system_metrics).resilience
    top = st.columns(4)
    top[0].metric("Retry success rate", fmt_pct(r.retrySuccessRate), border=True,
                  help="Retries that got an answer, of all retries; n/a without retries.")
    top[1].metric("Fallback rate", fmt_pct(r.fallbackRate), border=True,
                  help="Requests answered by a fallback (no instance could), of all requests; n/a without traffic.")
    top[2].metric("Timeout rate", fmt_pct(r.timeoutRate), border=True,
                  help="Requests that timed out, of all requests; n/a without traffic.")
    top[3].metric("Ejected instances", fmt_count(r.ejectedInstances), border=True,
                  help="Instances out of rotation now after consecutive failures.")
    bottom = st.columns(4)
    bottom[0].metric("Retries", fmt_count(r.retries), border=True)
    bottom[1].metric("Fallbacks", fmt_count(r.fallbacks), border=True)
    bottom[2].metric("Timeouts", fmt_count(r.timeouts), border=True)
    bottom[3].metric("Budget refusals", fmt_count(r.retryBudgetRefusals), border=True,
                     help="Retries not sent because the retry budget was spent.")
    st.caption(f"Over the last {r.windowSeconds / 60:g} min: {fmt_count(r.requests)} request(s) routed "
               f"· refreshes every {REFRESH_S} s")


def threshold_form(breakers: Sequence[BreakerOut]) -> None:
    """PUT /api/circuit-breakers/<name> with only the thresholds that changed; the API checks them together."""
    by_name = {b.serviceName: b for b in breakers}
    name = st.selectbox("Service", list(by_name), key="bk-service")
    if name is None:
        return
    b = by_name[name]
    keys = {f: f"bk-{f}-{name}" for f in forms.BREAKER_FIELDS}
    with st.form(f"bk-form-{name}", border=False):
        c = st.columns(4)
        new: dict[str, Any] = {
            "failureThreshold": c[0].number_input(
                "Consecutive failures", 1, 1000, b.failureThreshold, 1, key=keys["failureThreshold"],
                help="Opens after this many failures in a row."),
            "failureRateThreshold": c[1].number_input(
                "Failure rate %", 0.1, 100.0, float(b.failureRateThreshold), 1.0, format="%.1f",
                key=keys["failureRateThreshold"], help="Opens when this share of the window's calls failed."),
            "windowSize": c[2].number_input(
                "Window (calls)", 1, 1000, b.windowSize, 1, key=keys["windowSize"],
                help="How many recent calls the failure rate is taken over."),
            "minimumCalls": c[3].number_input(
                "Minimum calls", 1, 1000, b.minimumCalls, 1, key=keys["minimumCalls"],
                help="The rate counts only once the window holds this many calls (at most the window)."),
        }
        c = st.columns(4, vertical_alignment="bottom")
        new["slowCallMs"] = c[0].number_input(
            "Slow call (ms)", 1.0, 600_000.0, None if b.slowCallMs is None else float(b.slowCallMs), 50.0,
            format="%.0f", key=keys["slowCallMs"], placeholder="off",
            help="A call slower than this counts as a failure; blank turns it off.")
        new["timeout"] = c[1].number_input(
            "Open for (ms)", 1, 3_600_000, b.timeout, 1000, key=keys["timeout"],
            help="How long an open breaker refuses calls before it lets trial calls through.")
        new["halfOpenCalls"] = c[2].number_input(
            "Half-open trials", 1, 100, b.halfOpenCalls, 1, key=keys["halfOpenCalls"],
            help="Trial calls admitted while half-open; that many successes close the breaker.")
        with c[3]:
            submitted = st.form_submit_button("Save thresholds", type="primary", key=f"bk-submit-{name}",
                                              disabled=not CAN_ACT, help=ACT_HELP, width="stretch")
    if submitted:
        body = forms.breaker_body(b.model_dump(), new)
        if not body:
            st.info("Nothing changed.")
            return
        data.act(lambda: api.update_breaker(name, body),
                 lambda r: f"Breaker {r.serviceName} thresholds changed: {', '.join(body)}.",
                 reset=tuple(keys.values()))


def transition_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The newest transitions of db.queries.breaker_transitions first, as the columns the table shows."""
    last = frame.iloc[::-1].head(LAST_TRANSITIONS)
    return pd.DataFrame({
        "time": last["at"],
        "service": last["service_name"],
        "from": [breaker_label(s) for s in last["from_state"]],
        "to": [breaker_label(s) for s in last["to_state"]],
        "reason": last["reason"],
    })


@st.fragment(run_every=REFRESH_S)
def live_transitions(window: timedelta, service: str | None) -> None:
    """Breaker state over time per service, and the last transitions with their reasons (from PostgreSQL)."""
    now = datetime.now(UTC)
    since = now - window
    with data.reading() as db_session:
        frame = queries.breaker_transitions(db_session, since, service)
    if frame.empty:
        st.info("No breaker changed state in this window.")
        return
    segments = data.breaker_segments(frame, since, now)
    st.plotly_chart(charts.breaker_timeline(segments, data.timeline_start(frame, since, now), now), key="bk-timeline")
    st.dataframe(
        transition_table(frame),
        hide_index=True,
        height="content",
        key="bk-transitions",
        column_config={
            "time": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss.SSS"),
            "reason": st.column_config.TextColumn(width="large"),
        },
    )
    shown = min(len(frame), LAST_TRANSITIONS)
    st.caption(f"{len(frame)} transition(s) in the window, the last {shown} listed · services without a "
               f"transition in the window are not drawn · refreshes every {REFRESH_S} s")


# the engine holds the breakers and counters; without the API only the transitions (PostgreSQL) are shown
initial = data.fetch_or_none(api.circuit_breakers, page=True)
if initial is not None:
    st.subheader("Circuit breakers")
    live_breakers()
    with st.expander("Change thresholds", icon=":material/tune:"):
        if initial.breakers:
            threshold_form(initial.breakers)
        else:
            st.info("No breakers to configure.")
    st.subheader("Retries, fallbacks and timeouts")
    live_figures()

st.subheader("Transitions")
with data.reading(page=True) as db_session:
    names = [s.name for s in queries.service_briefs(db_session)]
left, right = st.columns(2)
window = left.selectbox("Window", list(WINDOWS), index=1, key="tl-window")
chosen = right.selectbox("Service", [ANY, *names], key="tl-service")
live_transitions(WINDOWS[window or "1 h"], None if chosen in (ANY, None) else chosen)
