"""Logs: filter and search the event log (live), download the filtered rows as CSV, clear the log (operators)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from contract.requests import LogLevel
from contract.responses import LogsClearedOut
from db import queries
from ui import api, data, login, session
from ui.format import fmt_json, level_label
from ui.session import Role

REFRESH_S = 5
ANY = "any"
ROW_LIMITS = (50, 100, 200, 500, 1000)

login.require_login()
st.title("Logs")
data.show_flash()

with data.reading(page=True) as db_session:
    sources = queries.log_sources(db_session)

c1, c2, c3, c4 = st.columns([1, 1, 2, 1])
level = c1.selectbox("Level", [ANY, *(level.value for level in LogLevel)], key="logs-level")
source = c2.selectbox("Source", [ANY, *sources], key="logs-source")
text = c3.text_input("Search", key="logs-q", placeholder="text in the message or source")
limit = c4.selectbox("Rows", ROW_LIMITS, index=ROW_LIMITS.index(100), key="logs-limit")
log_filter = queries.LogFilter(
    limit=limit,
    level=None if level == ANY else level,
    source=None if source in (ANY, None) else source,
    q=text.strip() or None,
)


def log_table(frame: pd.DataFrame) -> pd.DataFrame:
    """db.queries.logs_frame as the columns the table shows."""
    return pd.DataFrame({
        "time": frame["timestamp"],
        "level": [level_label(v) for v in frame["level"]],
        "source": frame["source"],
        "message": frame["message"],
        "metadata": [fmt_json(m) for m in frame["metadata"]],
    })


def cleared(r: LogsClearedOut) -> str:
    """The success message of Clear logs."""
    return f"Logs cleared: {r.deleted} row(s) deleted."


@st.fragment(run_every=REFRESH_S)
def live_logs(f: queries.LogFilter) -> None:
    """The filtered rows, newest first, and their CSV."""
    with data.reading() as db_session:
        frame = queries.logs_frame(db_session, f)
    if frame.empty:
        st.info("No log rows match these filters.")
    else:
        st.dataframe(
            log_table(frame),
            hide_index=True,
            key="logs-table",
            column_config={
                "time": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss.SSS"),
                "message": st.column_config.TextColumn(width="large"),
            },
        )
    left, right = st.columns([3, 1], vertical_alignment="center")
    left.caption(f"{len(frame)} row(s), newest first, at most {f.limit} · refreshes every {REFRESH_S} s")
    right.download_button(
        "Download CSV", queries.logs_csv(frame), file_name="logs.csv", mime="text/csv", on_click="ignore",
        key="logs-download", icon=":material/download:", disabled=frame.empty, width="stretch",
    )


live_logs(log_filter)

with st.expander("Clear logs"), st.form("clear-logs", border=False, clear_on_submit=True):
    confirm = st.checkbox("Yes, delete every log row", key="logs-confirm")
    if st.form_submit_button("Clear logs", type="primary", key="logs-clear", disabled=not session.can(Role.OPERATOR),
                             help=session.needs(Role.OPERATOR)):
        if confirm:
            data.act(api.clear_logs, cleared)
        else:
            st.warning("Tick the confirmation box to clear the logs.")
