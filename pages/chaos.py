"""Chaos: start failure simulations (operators), watch the active ones count down, stop them, read what each did."""

from __future__ import annotations

from functools import partial

import streamlit as st

from contract.chaos import Intensity, SimulationOut, StopAllOut
from db import queries
from db.models import Simulation
from ui import api, chaos, data, forms, login, session
from ui.format import (
    NA,
    fmt_duration_ms,
    fmt_ms,
    simulation_effect,
    simulation_kind,
    simulation_params,
    simulation_target,
)
from ui.session import Role

ACTIVE_REFRESH_S = 1
IDLE_REFRESH_S = 5
HISTORY_LIMIT = 50
MAX_DURATION_MS = 86_400_000  # the API's bound; the engine's SIMULATION_MAX_MS (1 h by default) is checked there
DEFAULT_DURATION_MS = 30_000
EVERY_SERVICE = "every service"
OVERDUE_S = 3  # past its end by more than this, an active simulation is not being ended: say so

login.require_login()
CAN_ACT = session.can(Role.OPERATOR)
ACT_HELP = session.needs(Role.OPERATOR)
st.title("Chaos")
data.show_flash()
st.caption("Failure simulations act on the real system: failures and delays are applied by the engine's router to "
           "every request it sends (routed traffic, load tests and health checks), a kill terminates a real instance "
           "process, an overload runs real queries on the engine's database and a leak makes the engine hold real "
           "memory. Each ends by itself at its duration, or when stopped; what it did is measured and kept below.")


def started(r: SimulationOut) -> str:
    """The success message of a start: "Simulation #3 started: memory leak on the engine, 1 MB/s for 2 s…"."""
    return (f"Simulation #{r.id} started: {simulation_kind(r.kind).lower()} on "
            f"{simulation_target(r.kind, r.target)}, {simulation_params(r.kind, api.plain(r.params))}.")


def ended(r: SimulationOut) -> str:
    """The success message of a stop, with what the simulation did."""
    effect = None if r.effect is None else api.plain(r.effect)
    return (f"Simulation #{r.id} {r.status}: {simulation_kind(r.kind).lower()} on "
            f"{simulation_target(r.kind, r.target)}, {simulation_effect(r.status, effect)}.")


def stopped_all(r: StopAllOut) -> str:
    """The success message of Stop all."""
    return f"{r.message}."


def duration_input(key: str) -> float:
    """The duration field every form has (ms, as the API takes it)."""
    return float(st.number_input("Duration (ms)", 1, MAX_DURATION_MS, DEFAULT_DURATION_MS, 1000, key=key,
                                 help="How long the simulation lasts; it can be stopped earlier. At most the "
                                      "engine's SIMULATION_MAX_MS (1 h by default)."))


def share_input(key: str) -> float:
    """The share of requests affected, in % (the API takes 0..1)."""
    return float(st.slider("Requests affected (%)", 1, 100, 100, key=key,
                           help="Each request is affected with this probability."))


def submit(label: str, key: str, blocked: str | None) -> bool:
    """A form's start button, disabled with the reason when `blocked`."""
    return st.form_submit_button(label, type="primary", key=key, icon=":material/bolt:", disabled=bool(blocked),
                                 help=blocked)


def service_failure_form(services: dict[str, bool]) -> None:
    """POST /api/simulate/service-failure: errors on a share of a service's requests, or kill one instance."""
    blocked = ACT_HELP or (None if services else "No services registered yet.")
    with st.form("sf-form", border=False):
        top = st.columns([2, 3])
        service = top[0].selectbox("Service", list(services), key="sf-service",
                                   format_func=lambda n: f"{n} (managed)" if services.get(n) else n)
        mode = top[1].radio("Mode", ["error", "kill"], key="sf-mode", horizontal=True,
                            format_func=lambda m: "Kill an instance process" if m == "kill" else "Fail requests",
                            help="Kill terminates one real instance process; only for a managed service (one the "
                                 "engine started, like the demo fleet).")
        bottom = st.columns(3)
        with bottom[0]:
            duration = duration_input("sf-duration")
        with bottom[1]:
            share = share_input("sf-share")
        status = bottom[2].number_input("Status code (400-599)", 400, 599, None, 1, key="sf-status",
                                        placeholder="none: connection error",
                                        help="Answer affected requests with this status; empty = a connection error."
                                             " Not used by a kill.")
        go = submit("Start service failure", "sf-start", blocked)
    if go and service:
        body = forms.service_failure_body(service, duration, share, None if status is None else int(status),
                                        mode or "error")
        data.act(lambda: api.simulate_service_failure(body), started)


def network_latency_form(services: dict[str, bool]) -> None:
    """POST /api/simulate/network-latency: delay requests to a service, or to every service."""
    with st.form("nl-form", border=False):
        top = st.columns([2, 1, 1])
        service = top[0].selectbox("Service", [EVERY_SERVICE, *services], key="nl-service",
                                   help="Delay requests to this service only, or to every service.")
        latency = top[1].number_input("Latency (ms)", 1, 60_000, 200, 50, key="nl-latency",
                                      help="Added before each affected request is sent.")
        jitter = top[2].number_input("Jitter (± ms)", 0, 60_000, 0, 10, key="nl-jitter",
                                     help="Each delay is latency plus or minus up to this much, uniformly.")
        bottom = st.columns(2)
        with bottom[0]:
            duration = duration_input("nl-duration")
        with bottom[1]:
            share = share_input("nl-share")
        go = submit("Start network latency", "nl-start", ACT_HELP)
    if go:
        body = forms.network_latency_body(float(latency), duration, None if service == EVERY_SERVICE else service,
                                        float(jitter), share)
        data.act(lambda: api.simulate_network_latency(body), started)


def database_overload_form() -> None:
    """POST /api/simulate/database-overload: real queries on the engine's own database."""
    with st.form("db-form", border=False):
        cols = st.columns(2)
        intensity = cols[0].radio("Intensity", [i.value for i in Intensity], index=1, key="db-intensity",
                                  horizontal=True, help=chaos.intensity_help())
        with cols[1]:
            duration = duration_input("db-duration")
        go = submit("Start database overload", "db-start", ACT_HELP)
    st.caption("Its effect is the engine's write latency (batches of log, metric and health rows) during the "
               "overload against the 30 s before it.")
    if go:
        data.act(lambda: api.simulate_database_overload({"duration": duration, "intensity": intensity}), started)


def memory_leak_form() -> None:
    """POST /api/simulate/memory-leak: the engine holds rate MB more every second, up to its cap."""
    with st.form("ml-form", border=False):
        cols = st.columns(2)
        rate = cols[0].number_input("Rate (MB/s)", 0.1, 100_000.0, 5.0, 1.0, format="%g", key="ml-rate",
                                    help="Memory the engine allocates (and touches) every second.")
        with cols[1]:
            duration = duration_input("ml-duration")
        go = submit("Start memory leak", "ml-start", ACT_HELP)
    st.caption("The engine holds at most rate x duration, and never more than its MEMORY_LEAK_CAP_MB (512 MB by "
               "default); everything is freed at the end.")
    if go:
        data.act(lambda: api.simulate_memory_leak({"duration": duration, "rate": float(rate)}), started)


def write_latency() -> None:
    """The engine's write latency now (GET /api/health), while a database overload runs."""
    health = data.fetch_quietly(api.health)
    if health is None:
        return
    w = health.writer.writeLatencyMs
    st.caption(f"Engine write latency over the last {w.windowSeconds} s: p50 {fmt_ms(w.p50)}, "
               f"p95 {fmt_ms(w.p95)}, max {fmt_ms(w.max)} over {w.batches} batches.")


def show_active(known: tuple[int, ...]) -> None:
    """The active simulations, live: a countdown and a Stop button each, and Stop all."""
    now = chaos.now()
    with data.reading() as db_session:
        active = queries.active_simulations(db_session)
    if tuple(r.id for r in active) != known:
        st.rerun()  # one started or ended: the history and the refresh rate change too
    if not active:
        st.info("No simulation is active.")
    for r in active:
        c = chaos.countdown(r.started_at, r.ends_at, now)
        what = f"#{r.id} · {simulation_kind(r.kind)} on {simulation_target(r.kind, r.target)}"
        if c.overdue_s < OVERDUE_S:
            total = fmt_duration_ms((r.ends_at - r.started_at).total_seconds() * 1000.0)
            text = f"{what} · {c.left()} of {total}"
        else:  # the engine ends a due simulation within a second: it is not running, or cannot write
            text = (f"{what} · past its end by {fmt_duration_ms(c.overdue_s * 1000.0)}: is the engine running? "
                    "It marks the simulation interrupted at its next start.")
        left, right = st.columns([5, 1], vertical_alignment="center")
        with left:
            st.progress(c.done, text=text)
            st.caption(simulation_params(r.kind, r.params))
        if right.button(f"Stop #{r.id}", key=f"sim-stop-{r.id}", icon=":material/stop:", width="stretch",
                        disabled=not CAN_ACT, help=ACT_HELP or "End it now; its effect is measured and kept"):
            data.act(partial(api.stop_simulation, r.id), ended, toast=True)
    if any(r.kind == "database-overload" for r in active):
        write_latency()
    if st.button("Stop all", key="sim-stop-all", icon=":material/stop_circle:", type="primary",
                 disabled=not CAN_ACT or not active,
                 help=ACT_HELP or ("End every active simulation now" if active else "Nothing to stop")):
        data.act(api.stop_all_simulations, stopped_all, toast=True)
    refresh = ACTIVE_REFRESH_S if known else IDLE_REFRESH_S
    st.caption(f"Updated {now:%H:%M:%S} UTC · refreshes every {refresh} s")


def show_history(simulations: list[Simulation]) -> None:
    """Every simulation, newest first, with its parameters and measured effect in words."""
    if not simulations:
        st.info("No simulation has run yet.")
        return
    st.dataframe(chaos.simulation_history(simulations), hide_index=True, placeholder=NA, key="sim-history",
                 column_config={
                     "id": st.column_config.NumberColumn(width=40),
                     "kind": st.column_config.TextColumn(width=125),
                     "target": st.column_config.TextColumn(width=100),
                     "parameters": st.column_config.TextColumn(width=260),
                     "status": st.column_config.TextColumn(width=110),
                     "effect": st.column_config.TextColumn(width=400, help="What was measured while it ran"),
                     "started": st.column_config.DatetimeColumn("started (UTC)", format="MM-DD HH:mm:ss",
                                                                width=110),
                     "ended": st.column_config.DatetimeColumn("ended (UTC)", format="MM-DD HH:mm:ss", width=110,
                                                              help="Empty while active"),
                 })
    st.caption(f"The last {len(simulations)} simulation(s), newest first, at most {HISTORY_LIMIT}.")


with data.reading(page=True) as db_session:
    services = {s.name: s.managed for s in queries.service_briefs(db_session)}
    active_ids = tuple(r.id for r in queries.active_simulations(db_session))
    history = queries.simulations(db_session, limit=HISTORY_LIMIT)

st.subheader("Start a simulation")
if not services:
    st.info("No services registered yet: a service failure needs one. Register one on the Services page.")
tabs = st.tabs(["Service failure", "Network latency", "Database overload", "Memory leak"])
with tabs[0]:
    service_failure_form(services)
with tabs[1]:
    network_latency_form(services)
with tabs[2]:
    database_overload_form()
with tabs[3]:
    memory_leak_form()

st.subheader("Active")
st.fragment(run_every=ACTIVE_REFRESH_S if active_ids else IDLE_REFRESH_S)(show_active)(active_ids)

st.subheader("History")
show_history(history)
