"""Audit (admins only): every mutating API call, filtered, and the same rows as the API's CSV."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from ui import api, data, login, session
from ui.audit import OUTCOMES, PERIODS, ROW_LIMITS, audit_query, audit_table
from ui.session import Role

login.require_login()
st.title("Audit")
if not session.can(Role.ADMIN):
    st.error(f"The audit trail needs the admin role; you are logged in as {session.who()}.")
    st.stop()
st.caption("Every POST, PUT, PATCH and DELETE the API answered, refusals and errors included: who, from where, what, "
           "on what, and the status sent. Bodies, passwords and tokens are never recorded; reads are not recorded. "
           "Nobody can clear it; rows older than AUDIT_RETENTION_DAYS are deleted.")

c1, c2, c3, c4, c5 = st.columns([2, 2, 1, 1, 1])
actor = c1.text_input("User", key="audit-actor", placeholder="a user name, exactly")
action = c2.text_input("Action", key="audit-action", placeholder="e.g. services.create_service")
outcome = c3.selectbox("Outcome", OUTCOMES, key="audit-outcome")
period = c4.selectbox("Period", list(PERIODS), index=1, key="audit-period")
limit = c5.selectbox("Rows", ROW_LIMITS, key="audit-limit")
query = audit_query(actor, action, outcome, period, limit, datetime.now(UTC))

entries = data.fetch(lambda: api.audit(query), page=True)
if entries:
    st.dataframe(audit_table(entries), hide_index=True, key="audit-table",
                 column_config={"time": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss")})
else:
    st.info("No audit rows match these filters.")
left, right = st.columns([3, 1], vertical_alignment="center")
left.caption(f"{len(entries)} row(s), newest first, at most {limit}")
csv_text = data.fetch_or_none(lambda: api.audit_csv(query)) if entries else ""
right.download_button("Download CSV", csv_text or "", file_name="audit.csv", mime="text/csv", on_click="ignore",
                      key="audit-download", icon=":material/download:", disabled=not csv_text, width="stretch")
