"""Overview: system KPIs, one card per service coloured by status with its uptime (24 h, 30 d), a heartbeat of
its latest checks and its open incidents, CPU and memory per service (a heatmap row each) with the failure
simulations shaded on them, and a banner while one is active; live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from contract.history import CheckOut
from contract.settings import Settings
from db import history, incidents, queries, series
from db.models import Simulation
from ui import api, cards, chaos, charts, data, login
from ui.format import fmt_mb, fmt_ms, fmt_pct, fmt_rate, fmt_status
from ui.history import CardHistory, card_histories

REFRESH_S = 5
CHART_WINDOW = timedelta(minutes=15)
CHART_POINTS = 300  # buckets per row at most: 15 minutes in 5 s buckets is 180
SETTINGS = Settings.from_env()
MIN_STEP = SETTINGS.collect_interval  # a bucket is never shorter than one measurement
GRACE = history.grace_for(SETTINGS.health_interval)  # a state counts as observed this long after its last check

login.require_login()
st.title("Overview")


def show_kpis(o: queries.Overview, services: list[data.ServiceSummary]) -> None:
    """Two rows of KPIs; a figure nobody measured shows n/a."""
    instances = sum(s.instance_count for s in services)
    healthy = sum(s.healthy_count for s in services)
    top = st.columns(4)
    top[0].metric("Active services", f"{o.active_services} / {o.total_services}", border=True,
                  help="Services whose latest health check is healthy or degraded, of all registered.")
    top[1].metric("Healthy instances", f"{healthy} / {instances}", border=True,
                  help="Instances whose latest health check is healthy, of all registered instances.")
    top[2].metric("System status", fmt_status(o.system_status), border=True,
                  help="healthy when every checked service is healthy, else degraded; unknown before checks.")
    top[3].metric("Requests / min", fmt_rate(o.requests_per_min), border=True,
                  help="Requests the engine routed to services in the last minute.")
    bottom = st.columns(4)
    bottom[0].metric("Avg response time", fmt_ms(o.avg_response_time_ms), border=True,
                     help="Request-weighted mean latency over the last minute; n/a without traffic.")
    bottom[1].metric("Error rate", fmt_pct(o.error_rate), border=True,
                     help="Failed requests in the last minute, as a share of all; n/a without traffic.")
    bottom[2].metric("CPU", fmt_pct(o.cpu_percent), border=True,
                     help="Mean of each service's latest CPU % scraped from its Prometheus metrics (last minute).")
    bottom[3].metric("Memory", fmt_mb(o.memory_mb), border=True,
                     help="Sum of each service's latest resident memory scraped from its metrics (last minute).")


def show_cards(services: list[data.ServiceSummary], now: datetime, past: dict[int, CardHistory],
               open_incidents: dict[str, list[str]]) -> None:
    """One card per service, tinted by its status, with its uptime, heartbeat and open incidents."""
    if not services:
        st.info("No services registered yet. Register one on the Services page.")
        return
    st.html(cards.service_cards(services, now, past, open_incidents))


def show_banner(simulations: list[Simulation], now: datetime) -> None:
    """While a failure simulation is active: which, on what, how long it has left, and a link to stop it."""
    banner = chaos.active_banner(simulations, now)
    if banner is None:
        return
    st.warning(banner, icon=":material/bolt:")
    st.page_link("pages/chaos.py", label="Open the Chaos page to watch or stop it", icon=":material/bolt:")


def show_charts(metrics: pd.DataFrame, simulations: list[Simulation], now: datetime) -> None:
    """CPU % and memory MB per service over the chart window, a heatmap row each, failure simulations shaded."""
    minutes = int(CHART_WINDOW.total_seconds() // 60)
    left, right = st.columns(2)
    for col, column, title, unit in (
        (left, "cpu_percent", f"CPU per service, last {minutes} min", "CPU (% of one core)"),
        (right, "memory_mb", f"Memory per service, last {minutes} min", "memory (MB)"),
    ):
        fig = charts.per_service_heatmap(metrics, column, title, unit, now - CHART_WINDOW, now)
        with col:
            if fig is None:
                st.info(f"{title}: nothing measured yet (a service needs a metrics path to be scraped).")
            else:
                charts.annotate_simulations(fig, simulations, now, since=now - CHART_WINDOW)
                st.plotly_chart(fig, key=f"chart-{column}")


def heartbeats(service_ids: list[int]) -> dict[int, list[CheckOut]] | None:
    """Each service's latest checks from the API; None when it does not answer (the cards say n/a)."""
    if not service_ids:
        return {}
    return data.fetch_quietly(lambda: api.recent_checks(service_ids, cards.BEATS))


@st.fragment(run_every=REFRESH_S)
def live() -> None:
    """Everything that moves: read once, then draw KPIs, cards and charts."""
    now = datetime.now(UTC)
    with data.reading() as db_session:
        o = queries.overview(db_session, now)
        services = data.summarize_services(queries.services_frame(db_session))
        metrics = series.metric_series(db_session, [s.name for s in services], now - CHART_WINDOW, now,
                                       max_points=CHART_POINTS, min_step=MIN_STEP)
        simulations = queries.simulations(db_session, since=now - CHART_WINDOW)
        # uptime is the stored history; the heartbeat is the engine's memory (the API)
        ids = [s.id for s in services]
        past = card_histories(db_session, ids, now, GRACE, heartbeats(ids))
        open_incidents: dict[str, list[str]] = {}
        for incident in incidents.open_incidents(db_session):
            if incident.service_name is not None:
                open_incidents.setdefault(incident.service_name, []).append(incident.title)
    show_banner(simulations, now)
    show_kpis(o, services)
    st.subheader("Services")
    show_cards(services, now, past, open_incidents)
    st.subheader("Resources")
    show_charts(metrics, simulations, now)
    st.caption(f"Updated {now:%H:%M:%S} UTC · refreshes every {REFRESH_S} s")


live()
