"""Overview: system KPIs; up to ui.fleet.CARD_LIMIT services a card each, coloured by status, with its uptime (24 h,
30 d), a heartbeat of its latest checks and its open incidents; past that, counts per status and a table of services
(worst first) filtered by status and name; CPU and memory per service (a heatmap row each, the table's first rows on a
large fleet) with the failure simulations shaded on them, and a banner while one is active; live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from contract.history import CheckOut
from contract.settings import Settings
from db import fleet, history, queries, series
from db.models import Simulation
from ui import api, cards, chaos, charts, data, login
from ui import fleet as fleet_view
from ui.format import NA, fmt_mb, fmt_ms, fmt_pct, fmt_rate, fmt_status
from ui.history import CardHistory, card_histories

REFRESH_S = 5
CHART_WINDOW = timedelta(minutes=15)
CHART_POINTS = 300  # buckets per row at most: 15 minutes in 5 s buckets is 180
CHART_ROWS = 30  # services on the heatmaps of a large fleet: the table's first (worst) rows
SETTINGS = Settings.from_env()
MIN_STEP = SETTINGS.collect_interval  # a bucket is never shorter than one measurement
GRACE = history.grace_for(SETTINGS.health_interval)  # a state counts as observed this long after its last check

login.require_login()
st.title("Overview")


def show_kpis(o: queries.Overview, counts: fleet_view.FleetCounts) -> None:
    """Two rows of KPIs; a figure nobody measured shows n/a."""
    instances = counts.total_instances
    healthy = counts.instances.get("healthy", 0)
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


def show_table(table: pd.DataFrame, total: int) -> None:
    """The matching services, a row each, worst first."""
    st.caption(f"{len(table):,d} of {total:,d} services match · worst first")
    st.dataframe(
        table, hide_index=True, placeholder=NA, key="overview-services",
        column_config={
            "uptime 24 h %": st.column_config.NumberColumn(format="%.2f", help="Up = healthy or degraded"),
            "uptime 30 d %": st.column_config.NumberColumn(format="%.2f"),
            "last check": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss", help="UTC"),
        },
    )


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
    """Everything that moves: read once, then draw KPIs, cards (or the table) and charts."""
    now = datetime.now(UTC)
    with data.reading() as db_session:
        counts = fleet_view.FleetCounts(fleet.status_counts(db_session), fleet.instance_counts(db_session))
    large = counts.total_services > fleet_view.CARD_LIMIT
    banner_box, kpi_box = st.container(), st.container()  # filled once read; the filters come first
    st.subheader("Services")
    if large:
        fleet_view.show_counts(counts)
        wanted = fleet_view.filters("overview")
    with data.reading() as db_session:
        o = queries.overview(db_session, now)
        simulations = queries.simulations(db_session, since=now - CHART_WINDOW)
        open_incidents = fleet_view.open_incident_titles(db_session)
        if large:
            rows = fleet.service_page(db_session, wanted, sort="status")
            ids = [r.id for r in rows]
            past = card_histories(db_session, ids, now, GRACE, None)  # no heartbeat: a call per service
            charted = [r.name for r in rows[:CHART_ROWS]]
        else:
            services = fleet_view.summaries(fleet.service_page(db_session))
            # uptime is the stored history; the heartbeat is the engine's memory (the API)
            ids = [s.id for s in services]
            past = card_histories(db_session, ids, now, GRACE, heartbeats(ids))
            charted = [s.name for s in services]
        metrics = series.metric_series(db_session, charted, now - CHART_WINDOW, now,
                                       max_points=CHART_POINTS, min_step=MIN_STEP)
    with banner_box:
        show_banner(simulations, now)
    with kpi_box:
        show_kpis(o, counts)
    if large:
        show_table(fleet_view.service_table(rows, past, open_incidents), counts.total_services)
    else:
        show_cards(services, now, past, open_incidents)
    st.subheader("Resources")
    if large:
        st.caption(f"The table's first {min(CHART_ROWS, len(charted))} services.")
    show_charts(metrics, simulations, now)
    st.caption(f"Updated {now:%H:%M:%S} UTC · refreshes every {REFRESH_S} s")


live()
