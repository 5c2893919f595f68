"""Services: counts per status and every instance with its latest check, filtered by its service's status and
name (live); one service's history (check latency over time and
90 daily uptime bars); forms to register, edit and delete (operators)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from contract.history import UptimeWindow
from contract.settings import Settings
from db import fleet, history
from ui import api, data, forms, login, session
from ui import fleet as fleet_view
from ui.format import NA
from ui.history import daily_bars, fmt_uptime, latency_chart
from ui.session import Role

REFRESH_S = 5
HISTORY_REFRESH_S = 60  # the rollup behind both charts gains a row per instance per minute
BAR_DAYS = 90
GRACE = history.grace_for(Settings.from_env().health_interval)
LATENCY_WINDOWS = [UptimeWindow.HOUR, UptimeWindow.DAY, UptimeWindow.WEEK, UptimeWindow.MONTH]
REGISTER_KEYS = ("reg-name", "reg-urls", "reg-health", "reg-metrics", "reg-weight")

login.require_login()
# viewers see the forms, with their buttons disabled and a help naming the role they take
CAN_ACT = session.can(Role.OPERATOR)
ACT_HELP = session.needs(Role.OPERATOR)
st.title("Services")
data.show_flash()


@st.fragment(run_every=REFRESH_S)
def live_table() -> None:
    """Counts per status, the filters, then one row per instance of the matching services; unmeasured cells read
    n/a."""
    with data.reading() as db_session:
        counts = fleet_view.FleetCounts(fleet.status_counts(db_session), fleet.instance_counts(db_session))
    if not counts.total_services:
        st.info("No services registered yet: register one below.")
        return
    fleet_view.show_counts(counts)
    wanted = fleet_view.filters("services")
    with data.reading() as db_session:
        rows = fleet.service_page(db_session, wanted)
    table = fleet_view.instance_table(rows)
    st.caption(f"{len(rows):,d} of {counts.total_services:,d} services match · {len(table):,d} instance rows")
    st.dataframe(
        table,
        hide_index=True,
        placeholder=NA,
        key="services-table",
        column_config={
            "latency ms": st.column_config.NumberColumn(format="%.1f", help="Latency of the latest check"),
            "last check": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss", help="UTC"),
            "last error": st.column_config.TextColumn(width="large"),
        },
    )
    st.caption(f"Refreshes every {REFRESH_S} s · times in UTC")


@st.fragment(run_every=HISTORY_REFRESH_S)
def history_view(services: list[data.ServiceSummary]) -> None:
    """One service: its check latency over a window (avg and max per step) and its uptime per UTC day."""
    by_id = {s.id: s for s in services}
    left, right = st.columns([2, 1])
    chosen = left.selectbox("Service", list(by_id), format_func=lambda i: by_id[i].name, key="history-service")
    window = right.segmented_control("Latency window", LATENCY_WINDOWS, default=UptimeWindow.DAY,
                                     key="history-window") or UptimeWindow.DAY
    if chosen is None:
        return
    now = datetime.now(UTC)
    today = now.date()
    with data.reading() as db_session:
        points = history.latency_series(db_session, chosen, now - window.span, now, window.step)
        days = history.daily_availability(db_session, chosen, today - timedelta(days=BAR_DAYS - 1), today, now,
                                          GRACE)
    name = by_id[chosen].name
    fig = latency_chart(points, f"Check latency of {name}, last {window.value}")
    if fig is None:
        st.info(f"No check latency measured for {name} in the last {window.value}.")
    else:
        st.plotly_chart(fig, key="history-latency")
    bars = [(d, a.uptime_percent, n) for d, (a, n) in days.items()]
    observed = [a for a, _ in days.values() if a.observed_s > 0]
    up, seen = sum(a.up_s for a in observed), sum(a.observed_s for a in observed)
    overall = fmt_uptime(up * 100.0 / seen) if seen else NA
    st.plotly_chart(daily_bars(bars, f"Uptime per day (UTC), last {BAR_DAYS} days: {overall}"),
                    key="history-daily")
    st.caption("Up = at least one instance healthy or degraded; grey = nothing observed that day. "
               f"Kept HEALTH_RETENTION_DAYS; refreshes every {HISTORY_REFRESH_S} s.")


def register_form() -> None:
    """POST /api/services from a form; the API validates and names any wrong field."""
    with st.form("register", border=False):
        name = st.text_input("Name", key="reg-name", placeholder="e.g. billing",
                             help="Letters, digits, '.', '_' or '-'")
        urls = st.text_area("Instance URLs, one per line", key="reg-urls",
                            placeholder="http://127.0.0.1:8080\nhttp://127.0.0.1:8081")
        c1, c2, c3 = st.columns(3)
        health = c1.text_input("Health path", value="/health", key="reg-health")
        metrics = c2.text_input("Metrics path (optional)", key="reg-metrics", placeholder="/metrics",
                                help="A Prometheus endpoint; CPU and memory are scraped from it.")
        weight = c3.number_input("Weight", min_value=1, max_value=1000, value=1, step=1, key="reg-weight")
        submitted = st.form_submit_button("Register", type="primary", key="reg-submit", disabled=not CAN_ACT,
                                          help=ACT_HELP)
    if submitted:
        body = forms.create_body(name, urls, health, metrics, int(weight))
        data.act(lambda: api.create_service(body),
                 lambda r: f"Service {r.name} registered with {r.instanceCount} instance(s).",
                 reset=REGISTER_KEYS)


def edit_form(services: list[data.ServiceSummary]) -> None:
    """PUT /api/services/<id> with only the fields that changed."""
    by_id = {s.id: s for s in services}
    chosen = st.selectbox("Service", list(by_id), format_func=lambda i: by_id[i].name, key="edit-service")
    if chosen is None:
        return
    s = by_id[chosen]
    with st.form(f"edit-{s.id}", border=False):
        name = st.text_input("Name", value=s.name, key=f"edit-name-{s.id}")
        c1, c2, c3 = st.columns(3)
        health = c1.text_input("Health path", value=s.health_path, key=f"edit-health-{s.id}")
        metrics = c2.text_input("Metrics path (blank = none)", value=s.metrics_path or "", key=f"edit-metrics-{s.id}")
        weight = c3.number_input("Weight", min_value=1, max_value=1000, value=s.weight, step=1,
                                 key=f"edit-weight-{s.id}")
        urls = st.text_area(
            "Instance URLs, one per line", value="\n".join(s.urls), key=f"edit-urls-{s.id}", disabled=s.managed,
            help="A managed service's instances change through scale-up and scale-down." if s.managed else None,
        )
        submitted = st.form_submit_button("Save changes", type="primary", key=f"edit-submit-{s.id}",
                                          disabled=not CAN_ACT, help=ACT_HELP)
    if submitted:
        body = forms.update_body(s.as_api(), name=name, health_path=health, metrics_path=metrics,
                               weight=int(weight), urls_text=None if s.managed else urls)
        if not body:
            st.info("Nothing changed.")
            return
        data.act(lambda: api.update_service(s.id, body),
                 lambda r: f"Service {r.name} updated: {', '.join(body)}.")


def delete_form(services: list[data.ServiceSummary]) -> None:
    """DELETE /api/services/<id> after an explicit confirmation."""
    by_id = {s.id: s for s in services}
    # cleared on submit, so the confirmation never carries over to the next service
    with st.form("delete", border=False, clear_on_submit=True):
        chosen = st.selectbox("Service", list(by_id), format_func=lambda i: by_id[i].name, key="delete-service")
        confirm = st.checkbox("Yes, deregister this service", key="delete-confirm",
                              help="A managed service's instance processes are stopped too.")
        submitted = st.form_submit_button("Delete", key="delete-submit", disabled=not CAN_ACT, help=ACT_HELP)
    if submitted:
        if chosen is None:
            return
        if not confirm:
            st.warning("Tick the confirmation box to delete.")
            return
        data.act(lambda: api.delete_service(chosen), lambda r: r.message)


live_table()

with data.reading(page=True) as db_session:
    summaries = fleet_view.summaries(fleet.service_page(db_session))

if summaries:
    st.subheader("History")
    history_view(summaries)

register_tab, edit_tab, delete_tab = st.tabs(["Register", "Edit", "Delete"])
with register_tab:
    register_form()
with edit_tab:
    if summaries:
        edit_form(summaries)
    else:
        st.info("No services to edit.")
with delete_tab:
    if summaries:
        delete_form(summaries)
    else:
        st.info("No services to delete.")
