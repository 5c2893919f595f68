"""Streamlit entry point: page config and navigation over the dashboard pages (no SQL here)."""

from __future__ import annotations

import streamlit as st

from ui.api import api_url

st.set_page_config(page_title="Microservice Monitor", page_icon="📡", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/overview.py", title="Overview", icon=":material/monitoring:", default=True),
        st.Page("pages/services.py", title="Services", icon=":material/dns:"),
        st.Page("pages/logs.py", title="Logs", icon=":material/receipt_long:"),
    ]
)
st.sidebar.caption(f"Microservice Monitor · API {api_url()}")
navigation.run()
