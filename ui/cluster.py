"""The Cluster page's building blocks: the engines on this database, live or gone, the leader and its term, each
heartbeat's age; every figure read on the database's clock."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd
import streamlit as st
from sqlalchemy.orm import Session

from db import cluster
from db.cluster import ClusterView, EngineRecord
from ui import data
from ui.format import NA, fmt_count
from ui.storage import fmt_when

__all__ = ["CACHE_S", "ClusterKpis", "cluster_kpis", "engine_state", "engines_table", "fmt_age", "read_cluster"]

CACHE_S = 1.0  # heartbeats come every second: the page must not show an older one than it need


@st.cache_data(ttl=CACHE_S, show_spinner=False)
def _view(_session: Session, database_url: str, lease_s: float) -> ClusterView:
    # keyed by the URL and the lease; the session is only the way in (not hashed)
    return cluster.cluster_view(_session, lease_s)


def read_cluster(lease_s: float) -> ClusterView:
    """The engines and the leader, cached a second; an unreachable database stops the run."""
    with data.reading() as db_session:
        return _view(db_session, os.environ.get("DATABASE_URL", ""), lease_s)


def fmt_age(seconds: float) -> str:
    """A heartbeat's age: "0.4 s", "12 s", "3 min", "5 h", "2 d"."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def engine_state(e: EngineRecord) -> str:
    """🟢 live, ⚪ stopped (a clean stop) or 🔴 gone (silent past the lease)."""
    if e.live:
        return "🟢 live"
    return "⚪ stopped" if e.stopped_at is not None else "🔴 gone"


def engines_table(view: ClusterView) -> pd.DataFrame:
    """One row per engine start, newest first, as the table shows it."""
    rows = view.engines
    return pd.DataFrame({
        "engine": [e.name for e in rows],
        "state": [engine_state(e) for e in rows],
        "leader": [f"👑 term {view.term}" if e.leader else "" for e in rows],
        "heartbeat age": [fmt_age(e.heartbeat_age_s) for e in rows],
        "started (UTC)": [fmt_when(e.started_at, view.read_at) for e in rows],
        "stopped (UTC)": [fmt_when(e.stopped_at, view.read_at) if e.stopped_at else "" for e in rows],
        "host": [e.host for e in rows],
        "pid": [str(e.pid) for e in rows],
        "API": [e.api_url or NA for e in rows],
        "traffic": [e.proxy_url or NA for e in rows],
        "id": [str(e.id) for e in rows],
    }, columns=["engine", "state", "leader", "heartbeat age", "started (UTC)", "stopped (UTC)", "host", "pid", "API",
                "traffic", "id"])


@dataclass(frozen=True)
class ClusterKpis:
    """The page's headline figures, as shown."""

    live: str
    gone: str
    leader: str
    leader_help: str
    term: str
    lease: str


def cluster_kpis(view: ClusterView) -> ClusterKpis:
    """Live and gone engines, the leader by name, its term and the lease."""
    live = sum(e.live for e in view.engines)
    leader = next((e for e in view.engines if e.leader), None)
    return ClusterKpis(
        live=fmt_count(live),
        gone=fmt_count(len(view.engines) - live),
        leader=NA if leader is None else leader.name,
        leader_help=("No engine holds the leader's lock confirmed within the lease: the singleton jobs (autoscaler, "
                     "storage upkeep, alert evaluation) wait for one." if leader is None else
                     f"Engine {leader.id} (pid {leader.pid} on {leader.host}) holds the leader's lock and runs the "
                     "singleton jobs: autoscaler, storage upkeep, SLO retention, alert evaluation."),
        term=NA if view.term is None else fmt_count(view.term),
        lease=f"{view.lease_s:g} s",
    )
