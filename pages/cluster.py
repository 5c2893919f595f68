"""Cluster: the engines sharing this database, which are live, which leads, and how old each heartbeat is; live."""

from __future__ import annotations

import streamlit as st

from contract.errors import ConfigError
from contract.settings import Settings
from ui import cluster, login
from ui.storage import fmt_when

REFRESH_S = 2

login.require_login()
st.title("Cluster")
st.caption("Every engine started on this database registers itself and writes a heartbeat every "
           "CLUSTER_HEARTBEAT_S on a connection of its own; one silent longer than the lease is gone, one stopped "
           "cleanly says so at once. The engine holding the leader's lock runs the singleton jobs; each new leader "
           "takes the next fencing term. Health checks still run on every engine.")

try:
    settings = Settings.from_env()
except ConfigError as exc:
    st.error(f"The cluster settings cannot be read: {exc}")
    st.stop()


def live_cluster(lease_s: float) -> None:
    """The figures and the engines table, read on the database's clock."""
    view = cluster.read_cluster(lease_s)
    k = cluster.cluster_kpis(view)
    cols = st.columns(5)
    cols[0].metric("Live engines", k.live, border=True,
                   help="Not stopped, and the last heartbeat younger than the lease.")
    cols[1].metric("Stopped or gone", k.gone, border=True,
                   help="Engine starts kept for a day after their last heartbeat.")
    cols[2].metric("Leader", k.leader, help=k.leader_help, border=True)
    cols[3].metric("Fencing term", k.term, border=True, help="Incremented by each new leader.")
    cols[4].metric("Lease", k.lease, border=True, help="CLUSTER_LEASE_S: an engine silent this long is gone.")
    if not view.engines:
        st.info("No engine has registered on this database yet.")
        return
    st.dataframe(cluster.engines_table(view), hide_index=True, key="cluster-engines", column_config={
        "state": st.column_config.TextColumn(
            help="live: heartbeat younger than the lease · stopped: a clean stop · gone: silent past the lease "
                 "(a crash, or its database connection lost)"),
        "heartbeat age": st.column_config.TextColumn(help="Since its last heartbeat, on the database's clock"),
        "id": st.column_config.TextColumn(help="A new id each start"),
    })
    st.caption(f"Read at {fmt_when(view.read_at, view.read_at)} (database time) · refreshes every {REFRESH_S} s")


st.fragment(run_every=REFRESH_S)(live_cluster)(settings.cluster_lease_s)
