"""Streamlit entry point: page config, then the login form or the navigation over the pages (no SQL here)."""

from __future__ import annotations

import streamlit as st

from ui import login, session, storage
from ui.api import api_url
from ui.format import dashboard_css
from ui.session import Role

BANNER_REFRESH_S = 5

st.set_page_config(page_title="Microservice Monitor", page_icon="📡", layout="wide")

if not session.logged_in():
    # the only page until a login succeeds: no other page is registered, so none can be opened by URL
    st.navigation([st.Page(login.login_form, title="Log in", icon=":material/login:")], position="hidden").run()
else:
    pages = [
        st.Page("pages/overview.py", title="Overview", icon=":material/monitoring:", default=True),
        st.Page("pages/services.py", title="Services", icon=":material/dns:"),
        st.Page("pages/metrics.py", title="Metrics", icon=":material/query_stats:"),
        st.Page("pages/load_balancer.py", title="Load Balancer", icon=":material/alt_route:"),
        st.Page("pages/resilience.py", title="Resilience", icon=":material/electrical_services:"),
        st.Page("pages/load_test.py", title="Load Test", icon=":material/speed:"),
        st.Page("pages/chaos.py", title="Chaos", icon=":material/bolt:"),
        st.Page("pages/experiments.py", title="Experiments", icon=":material/science:"),
        st.Page("pages/scaling.py", title="Scaling", icon=":material/stacks:"),
        st.Page("pages/alerts.py", title="Alerts", icon=":material/notifications_active:"),
        st.Page("pages/incidents.py", title="Incidents", icon=":material/crisis_alert:"),
        st.Page("pages/notifications.py", title="Notifications", icon=":material/campaign:"),
        st.Page("pages/logs.py", title="Logs", icon=":material/receipt_long:"),
        st.Page("pages/storage.py", title="Storage", icon=":material/database:"),
        st.Page("pages/cluster.py", title="Cluster", icon=":material/hub:"),
    ]
    if session.can(Role.ADMIN):
        pages.append(st.Page("pages/users.py", title="Users", icon=":material/group:"))
        pages.append(st.Page("pages/audit.py", title="Audit", icon=":material/policy:"))
    navigation = st.navigation(pages, expanded=True)  # every page listed: no "View more" past the tenth
    st.html(dashboard_css())  # status tints and the like, for every page
    # the database or the API out of reach, said once at the top of every page; a fragment, so it comes and goes
    # while a page only redraws its own live parts
    st.fragment(run_every=BANNER_REFRESH_S)(storage.show_outage_banner)()
    st.sidebar.markdown(f":material/person: {session.who()}")
    st.sidebar.button("Log out", key="logout", icon=":material/logout:", on_click=login.log_out,
                      help="Ends your sessions on every device.")
    with st.sidebar.popover("Change password", icon=":material/key:"):
        login.password_form()
    st.sidebar.caption(f"Microservice Monitor · API {api_url()}")
    navigation.run()
