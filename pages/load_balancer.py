"""Load Balancer: the engine's live algorithm, picks and in-flight requests per instance; switch the algorithm."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from contract.traffic import LoadBalancerOut
from ui import api, charts, data, login, session
from ui.format import NA, fmt_count, fmt_status
from ui.session import Role

REFRESH_S = 3
DESCRIPTIONS = {
    "round-robin": "each instance in turn",
    "least-load": "the instance with the fewest requests in flight",
    "weighted": "smooth weighted round-robin by instance weight",
    "p2c": "the less busy of two random instances",
    "consistent-hash": "a hash ring on the X-Route-Key header",
    "random": "uniformly at random",
}

login.require_login()
CAN_ACT = session.can(Role.OPERATOR)
ACT_HELP = session.needs(Role.OPERATOR)
st.title("Load Balancer")
data.show_flash()


def pick_table(frame: pd.DataFrame) -> pd.DataFrame:
    """ui.data.picks_frame as the columns the table shows."""
    return pd.DataFrame({
        "service": frame["service"],
        "instance URL": frame["url"],
        "health": [fmt_status(h) for h in frame["health"]],
        "ejected": frame["ejected"],
        "picks": frame["picks"],
        "in flight": frame["in_flight"],
        "share %": frame["share"],
    })


def describe(name: str) -> str:
    """One line on an algorithm ("" for a name this dashboard does not know)."""
    return DESCRIPTIONS.get(name, "")


def algorithm_form(lb: LoadBalancerOut) -> None:
    """PUT /api/load-balancer with the chosen algorithm (the API checks the name)."""
    algorithms, current = lb.algorithms, lb.algorithm
    with st.form("lb-form", border=False):
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        choice = left.selectbox(
            "Switch the algorithm", algorithms, index=algorithms.index(current) if current in algorithms else 0,
            key="lb-algorithm",
            format_func=lambda name: f"{name} — {describe(name)}" if describe(name) else name,
        )
        submitted = right.form_submit_button("Apply", type="primary", key="lb-apply", disabled=not CAN_ACT,
                                             help=ACT_HELP, width="stretch")
    if submitted and choice is not None:
        if choice == current:
            st.info(f"The balancer already uses {current}.")
            return
        data.act(lambda: api.set_algorithm(choice), lambda r: f"Load balancer algorithm is now {r.algorithm}.",
                 reset=("lb-algorithm",))


@st.fragment(run_every=REFRESH_S)
def live_kpis() -> None:
    """The algorithm in use and totals over every instance, read from the engine."""
    lb = data.fetch(api.load_balancer)
    frame = data.picks_frame(lb.instances)
    kpis = st.columns(4)
    kpis[0].metric("Algorithm", lb.algorithm, border=True, help="How the engine picks an instance per request.")
    kpis[1].metric("Total picks", fmt_count(lb.totalPicks), border=True,
                   help="Requests sent to instances since the engine started (retries count again).")
    kpis[2].metric("In flight", fmt_count(int(frame["in_flight"].sum())), border=True,
                   help="Requests waiting for an instance's answer now.")
    kpis[3].metric("Ejected instances", f"{int(frame['ejected'].sum())} / {len(frame)}", border=True,
                   help="Instances taken out of rotation after consecutive failures (outlier ejection).")


@st.fragment(run_every=REFRESH_S)
def live_instances() -> None:
    """The per-instance table and the picks chart, read from the engine."""
    lb = data.fetch(api.load_balancer)
    frame = data.picks_frame(lb.instances)
    if frame.empty:
        st.info("No services registered yet. Register one on the Services page.")
        return
    st.dataframe(
        pick_table(frame),
        hide_index=True,
        placeholder=NA,
        key="lb-table",
        column_config={
            "ejected": st.column_config.CheckboxColumn(help="Out of rotation after consecutive failures"),
            "picks": st.column_config.NumberColumn(format="localized", help="Times the balancer chose it"),
            "in flight": st.column_config.NumberColumn(help="Requests waiting for its answer now"),
            "share %": st.column_config.NumberColumn(
                format="%.1f", help="Its picks as a share of its service's picks; n/a before the service's first pick"),
        },
    )
    if lb.totalPicks == 0:
        st.info("No requests routed yet: requests to /proxy/<service>/<path> are balanced across these instances.")
    else:
        st.plotly_chart(charts.picks_bars(frame), key="lb-picks")
    st.caption(f"Live from the engine · refreshes every {REFRESH_S} s")


live_kpis()
algorithm_form(data.fetch(api.load_balancer, page=True))
st.subheader("Instances")
live_instances()
