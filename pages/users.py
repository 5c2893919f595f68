"""Users (admins only): who may log in with which role; add and remove users through the API."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from contract.responses import UserOut
from ui import api, data, login, session
from ui.session import Role

ROLES = [r.label for r in sorted(Role)]
ADD_KEYS = ("user-name", "user-password", "user-role")

login.require_login()
st.title("Users")
if not session.can(Role.ADMIN):
    st.error(f"Managing users needs the admin role; you are logged in as {session.who()}.")
    st.stop()
data.show_flash()


def user_table(users: Sequence[UserOut]) -> pd.DataFrame:
    """GET /api/users as the columns the table shows."""
    return pd.DataFrame({
        "id": [u.id for u in users],
        "username": [u.username for u in users],
        "role": [u.role for u in users],
        "created": data.utc_times([u.createdAt for u in users]),
    })


def add_form() -> None:
    """POST /api/users; the API checks the name, the password length and duplicates."""
    with st.form("add-user", border=False):
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("Username", key="user-name")
        password = c2.text_input("Password", type="password", key="user-password", help="At least 8 characters.",
                                 autocomplete="new-password")
        role = c3.selectbox("Role", ROLES, key="user-role",
                            help="viewer: reads · operator: also actions · admin: also users")
        submitted = st.form_submit_button("Add user", type="primary", key="user-add")
    if submitted:
        data.act(lambda: api.create_user(name.strip(), password, role),
                 lambda r: f"User {r.username} added as {r.role}.", reset=ADD_KEYS)


def delete_form(users: Sequence[UserOut]) -> None:
    """DELETE /api/users/<id> after an explicit confirmation (the API refuses yourself and the last admin)."""
    by_id = {u.id: u for u in users if u.username != session.username()}
    if not by_id:
        st.info("No other users to remove.")
        return
    with st.form("delete-user", border=False, clear_on_submit=True):
        chosen = st.selectbox("User", list(by_id), key="user-delete",
                              format_func=lambda i: f"{by_id[i].username} ({by_id[i].role})")
        confirm = st.checkbox("Yes, remove this user", key="user-delete-confirm",
                              help="Their sessions end at once.")
        submitted = st.form_submit_button("Remove user", key="user-delete-submit")
    if submitted and chosen is not None:
        if not confirm:
            st.warning("Tick the confirmation box to remove the user.")
            return
        data.act(lambda: api.delete_user(chosen), lambda r: r.message)


users = data.fetch(api.list_users, page=True)
st.dataframe(user_table(users), hide_index=True, key="users-table",
             column_config={"created": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm")})
add_tab, delete_tab = st.tabs(["Add", "Remove"])
with add_tab:
    add_form()
with delete_tab:
    delete_form(users)
