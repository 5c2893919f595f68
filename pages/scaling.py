"""Scaling: instances and load per service with Scale up / Scale down (operators), each managed service's autoscaler
settings, instances over time with every scale-up and scale-down marked, and the decision history; live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import streamlit as st

from contract.scaling import AutoscalerConfig, AutoscalerOut, ScaleOut, ScalingOut
from db import queries
from ui import api, data, forms, login, scaling, session
from ui.format import (
    NA,
    SCALING_METRICS,
    autoscaler_summary,
    fmt_count,
    status_badge_colour,
)
from ui.session import Role

REFRESH_S = 2
HISTORY_LIMIT = 500
ANY = "any"
WINDOWS = {"15 min": timedelta(minutes=15), "1 h": timedelta(hours=1), "6 h": timedelta(hours=6),
           "24 h": timedelta(hours=24)}
DEFAULTS = AutoscalerConfig()  # what an autoscaler starts with
# the form's fields in the API's names (its widget keys); forms.autoscaler_body maps the settings to them
FIELDS = ("enabled", "metric", "target", "tolerance", "scaleUpWindowS", "scaleDownWindowS", "maxStep", "minInstances",
          "maxInstances")

login.require_login()
CAN_ACT = session.can(Role.OPERATOR)
ACT_HELP = session.needs(Role.OPERATOR)
st.title("Scaling")
data.show_flash()
st.caption("A managed service (one the engine runs from a launch command, like the demo fleet) scales with real "
           "processes: a new instance takes traffic once it answers its health check; a removed one leaves the "
           "balancer first and its requests in flight finish. The autoscaler applies the Kubernetes HPA rule "
           "every period and writes each decision, \"no change\" too, to the history below. External services "
           "are monitored only.")


def scaled(r: ScaleOut) -> str:
    """The success message of a scale-up or scale-down: "orders scaled up: 2 → 3 instance(s)."."""
    return f"{r.message.replace(' -> ', ' → ')}."


def saved(name: str, r: AutoscalerOut) -> str:
    """The success message of an autoscaler change, with the settings now in force."""
    bounds = f"{r.minInstances} to {r.maxInstances} instances"
    if not r.enabled:
        return f"Autoscaler of {name} off; {bounds}."
    return (f"Autoscaler of {name} on: {autoscaler_summary(r)}, scale-up window {r.scaleUpWindowS:g} s, "
            f"scale-down window {r.scaleDownWindowS:g} s, max step {r.maxStep}, {bounds}.")


def kpis(rows: list[scaling.ScalingRow], live: ScalingOut | None) -> None:
    """Totals over every service."""
    managed = [r for r in rows if r.managed]
    loads = [r.load for r in rows if r.load is not None]
    cols = st.columns(4)
    cols[0].metric("Total instances", fmt_count(sum(r.instance_count for r in rows)), border=True,
                   help="Registered instances of every service.")
    cols[1].metric("Managed services", f"{len(managed)} / {len(rows)}", border=True,
                   help="Services the engine runs and can scale, of all registered.")
    cols[2].metric("Autoscaler on", fmt_count(sum(r.autoscaler is not None for r in managed)), border=True)
    cols[3].metric("Requests in flight", NA if live is None or len(loads) < len(rows) else fmt_count(sum(loads)),
                   border=True, help="Sent through the engine and not answered yet, over every service.")


def service_row(r: scaling.ScalingRow) -> None:
    """One service: name and status, counts, bounds, autoscaler, and its Scale up / Scale down buttons."""
    with st.container(border=True, key=f"sc-row-{r.id}"):
        cols = st.columns([3, 2, 2, 2, 4, 2], vertical_alignment="center")
        cols[0].markdown(f"**{r.name}** :{status_badge_colour(r.status)}-badge[{r.status}]")
        cols[0].caption("managed" if r.managed else "external: monitored only")
        cols[1].metric("Instances", fmt_count(r.instance_count), help=f"{r.healthy_count} healthy at the last check")
        cols[2].metric("In flight", fmt_count(r.load), help="Requests to it through the engine not answered yet; "
                                                            "n/a when the engine's API does not answer.")
        cols[3].metric("Min to max", f"{r.min_instances} to {r.max_instances}" if r.managed else NA,
                       help="The bounds scaling keeps to, manual or automatic.")
        cols[4].markdown(f"**Autoscaler** {autoscaler_summary(r.autoscaler) if r.managed else NA}")
        up = cols[5].button("Scale up", key=f"sc-up-{r.id}", icon=":material/add:", width="stretch",
                            disabled=r.up_blocked is not None,
                            help=r.up_blocked or "Start one more instance; it takes traffic once it answers its "
                                                 "health check (up to about 15 s).")
        down = cols[5].button("Scale down", key=f"sc-down-{r.id}", icon=":material/remove:", width="stretch",
                              disabled=r.down_blocked is not None,
                              help=r.down_blocked or "Take one instance out of the balancer, let its requests in "
                                                     "flight finish, then stop it.")
        if up:
            with st.spinner(f"Starting an instance of {r.name} and waiting until it answers its health check…"):
                data.act(partial(api.scale_up, r.id), scaled, toast=True)
        if down:
            with st.spinner(f"Draining and stopping an instance of {r.name}…"):
                data.act(partial(api.scale_down, r.id), scaled, toast=True)


def live_services() -> None:
    """Every service's counts from PostgreSQL and load from the engine, with the scaling buttons."""
    now = datetime.now(UTC)
    with data.reading() as db_session:
        services = queries.list_services(db_session)
    live = data.fetch_quietly(api.scaling)
    rows = scaling.scaling_rows(services, live, ACT_HELP)
    if not rows:
        st.info("No services registered yet. Register one on the Services page; the demo fleet "
                "(`python -m engine up --demo`) brings three managed ones.")
        return
    kpis(rows, live)
    for r in rows:
        service_row(r)
    load = "load live from the engine" if live is not None else "load n/a: the engine's API does not answer"
    st.caption(f"Updated {now:%H:%M:%S} UTC · {load} · refreshes every {REFRESH_S} s")


def autoscaler_form(rows: list[scaling.ScalingRow]) -> None:
    """PUT /api/services/<id>/autoscaler with the form's settings for the chosen managed service."""
    managed = {r.id: r for r in rows if r.managed}
    if not managed:
        st.info("No managed service: only a service the engine runs (one with a launch command, like the demo "
                "fleet) can scale.")
        return
    chosen = st.columns([1, 2])[0].selectbox("Service", list(managed), key="as-service",
                                             format_func=lambda i: managed[i].name)
    if chosen is None:
        return
    r = managed[chosen]
    a = r.autoscaler or DEFAULTS
    keys = {f: f"as-{f}-{r.id}" for f in FIELDS}
    with st.form(f"as-form-{r.id}", border=False):
        top = st.columns([2, 3, 2, 2], vertical_alignment="bottom")
        enabled = top[0].toggle("Autoscaler on", r.autoscaler is not None, key=keys["enabled"],
                                help="Off: the count changes only by hand. Turning it off forgets its settings; "
                                     "the bounds stay.")
        metric = top[1].selectbox(
            "Metric", list(SCALING_METRICS), index=list(SCALING_METRICS).index(a.metric), key=keys["metric"],
            format_func=lambda m: SCALING_METRICS[m],
            help="Per instance, averaged over the service's instances: requests in flight through the engine "
                 "(sampled every 0.25 s over the period), CPU % scraped from each instance's metrics, or the p95 "
                 "latency of the requests the engine routed to it.")
        target = top[2].number_input(
            "Target", 0.001, 1_000_000.0, float(a.target), 1.0, format="%g", key=keys["target"],
            help="The value per instance the autoscaler aims at, in the metric's unit (requests, %, ms): "
                 "desired = ceil(instances x value / target).")
        tolerance = top[3].number_input(
            "Tolerance (%)", 0, 99, round(100.0 * a.tolerance), 1, key=keys["tolerance"],
            help="No change while the value is within this share of the target (the HPA's default is 10 %).")
        bottom = st.columns(5)
        up_window = bottom[0].number_input(
            "Scale-up window (s)", 0.0, 3600.0, float(a.up_window_s), 5.0, format="%g",
            key=keys["scaleUpWindowS"],
            help="Scale up only to the lowest count recommended over this window (0: at once, the HPA default).")
        down_window = bottom[1].number_input(
            "Scale-down window (s)", 0.0, 3600.0, float(a.down_window_s), 30.0, format="%g",
            key=keys["scaleDownWindowS"],
            help="Scale down only to the highest count recommended over this window (the HPA default is 300 s), "
                 "so a dip in load does not remove instances.")
        max_step = bottom[2].number_input("Max step", 1, 100, int(a.max_step), 1, key=keys["maxStep"],
                                          help="At most this many instances added or removed in one period.")
        lowest = bottom[3].number_input("Min instances", 1, 100, r.min_instances, 1, key=keys["minInstances"],
                                        help="Neither the autoscaler nor Scale down goes below this.")
        highest = bottom[4].number_input("Max instances", 1, 100, r.max_instances, 1, key=keys["maxInstances"],
                                         help="Neither the autoscaler nor Scale up goes above this.")
        submitted = st.form_submit_button("Save", type="primary", key=f"as-save-{r.id}", icon=":material/save:",
                                          disabled=not CAN_ACT, help=ACT_HELP)
    st.caption("The target is in the metric's unit: requests in flight per instance, CPU % per instance, or p95 "
               "latency in ms. Saving applies from the next autoscaler period.")
    if submitted:
        body = forms.autoscaler_body(
            enabled, metric=metric or a.metric, target=float(target), tolerance_pct=float(tolerance),
            up_window_s=float(up_window), down_window_s=float(down_window), max_step=int(max_step),
            min_instances=int(lowest), max_instances=int(highest))
        data.act(lambda: api.set_autoscaler(r.id, body), partial(saved, r.name), reset=tuple(keys.values()))


def live_chart(window: timedelta) -> None:
    """Instances per service over the window from scaling_events, scaling events marked, simulations shaded."""
    now = datetime.now(UTC)
    since = now - window
    with data.reading() as db_session:
        before = queries.scaling_counts_before(db_session, since)
        steps = queries.scaling_steps(db_session, since)
        simulations = queries.simulations(db_session, since=since)
    points = scaling.instance_steps(before, steps, since, now)
    # the axis starts a little before the first known count, so a fresh fleet's first minutes are not a sliver
    fig = scaling.instance_counts(points, steps, simulations, data.timeline_start(points, since, now), now)
    if fig is None:
        st.info("No scaling decision yet: a line starts with a service's first scale-up, scale-down or "
                "autoscaler period.")
        return
    st.plotly_chart(fig, key="sc-chart")
    st.caption(f"▲ scale-up, ▼ scale-down, drawn at the new count: hover one for who decided it and why. Shaded: "
               f"failure simulations. A service with no scaling decision has no line · refreshes every {REFRESH_S} s")


def live_history(service: str | None, changes_only: bool) -> None:
    """The decisions, newest first, with their metric value against the target and the reason; CSV download."""
    with data.reading() as db_session:
        events = queries.scaling_events(db_session, service, HISTORY_LIMIT, changes_only)
    if events.empty:
        st.info("No scaling decision yet." if not service else f"No scaling decision for {service} yet.")
        return
    st.dataframe(scaling.scaling_history(events), hide_index=True, placeholder=NA, key="sc-history", column_config={
        "time": st.column_config.DatetimeColumn("time (UTC)", format="MM-DD HH:mm:ss", width=105),
        "service": st.column_config.TextColumn(width=90),
        "source": st.column_config.TextColumn(width=85, help="manual (a button or the API) or autoscaler"),
        "direction": st.column_config.TextColumn(width=85),
        "instances": st.column_config.TextColumn(width=70, help="Instance count before → after"),
        "metric vs target": st.column_config.TextColumn(width=230, help="What the autoscaler measured over the "
                                                                         "period, against its target"),
        "reason": st.column_config.TextColumn(width="large"),
    })
    csv = events.assign(timestamp=[t.isoformat() for t in events["timestamp"]]).to_csv(index=False)
    st.download_button("Download CSV", csv, file_name="scaling-decisions.csv", mime="text/csv", on_click="ignore",
                       key="sc-download", icon=":material/download:")
    st.caption(f"The last {len(events)} decision(s), newest first, at most {HISTORY_LIMIT} · refreshes every "
               f"{REFRESH_S} s")


with data.reading(page=True) as db_session:
    registered = queries.list_services(db_session)
rows = scaling.scaling_rows(registered, None, ACT_HELP)

st.subheader("Services")
st.fragment(run_every=REFRESH_S)(live_services)()

st.subheader("Autoscaler")
autoscaler_form(rows)

st.subheader("Instances over time")
window = st.segmented_control("Window", list(WINDOWS), default="15 min", key="sc-window")
st.fragment(run_every=REFRESH_S)(live_chart)(WINDOWS[window or "15 min"])

st.subheader("Decisions")
left, right = st.columns([3, 1], vertical_alignment="bottom")
chosen = left.selectbox("Service", [ANY, *(r.name for r in rows)], key="sc-service")
changes = right.toggle("Changes only", False, key="sc-changes",
                       help="Leave out the periods where the autoscaler changed nothing (it writes one every period).")
st.fragment(run_every=REFRESH_S)(live_history)(None if chosen in (ANY, None) else chosen, changes)
