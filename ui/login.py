"""The login form: username and password exchanged for a token through the API, kept by ui.session; logging out
and changing one's own password, also through the API."""

from __future__ import annotations

import contextlib
import os

import streamlit as st

from contract.roles import ADMIN_PASSWORD_FILE
from ui import api, session

__all__ = ["PASSWORD_WIDGET", "log_out", "login_form", "password_form", "require_login"]

PASSWORD_WIDGET = "login-password"  # noqa: S105 - a widget key
PASSWORD_KEYS = ("own-password-current", "own-password-new")
PASSWORD_CHANGED = "Password changed; your other sessions have ended."  # noqa: S105 - a message


def _first_start_hint() -> str:
    """Where the first admin's password is: ADMIN_PASSWORD, or generated, printed and kept in DATA_DIR."""
    data_dir = os.environ.get("DATA_DIR")
    where = f"`{os.path.join(data_dir, ADMIN_PASSWORD_FILE)}`" if data_dir else f"`DATA_DIR/{ADMIN_PASSWORD_FILE}`"
    return (f"First start? Log in as **admin** with the password printed by `make run`, also in {where} "
            "(or `ADMIN_PASSWORD`, if you set it). More users: the Users page, or `python -m engine user add`.")


def login_form() -> None:
    """Username and password, exchanged for a token through POST /api/auth/token; a success reruns."""
    st.title("Microservice Monitor")
    notice = session.take_notice()
    if notice:
        st.warning(notice)
    with st.form("login"):
        name = st.text_input("Username", key="login-username", autocomplete="username")
        password = st.text_input("Password", type="password", key=PASSWORD_WIDGET, autocomplete="current-password")
        submitted = st.form_submit_button("Log in", type="primary", key="login-submit")
    st.caption(_first_start_hint())
    if not submitted:
        return
    st.session_state.pop(PASSWORD_WIDGET, None)  # the password is not kept past this run
    if not name.strip() or not password:
        st.error("Enter a username and a password.")
        return
    try:
        answer = api.login(name.strip(), password)
    except api.ApiCallFailed as exc:
        if exc.status == 429:
            wait = f"{exc.retry_after} s" if exc.retry_after is not None else "a while"
            st.error(f"Too many failed logins from this address. Try again in {wait}.")
        elif exc.status == 401:
            st.error(exc.error)
        else:
            st.error(exc.text())
        return
    session.store(answer.token, answer.role, name.strip(), answer.expiresAt)
    st.rerun()


def require_login() -> None:
    """Call first on every page: without a valid login, show the login form and stop this run."""
    if not session.logged_in():
        login_form()
        st.stop()


def log_out() -> None:
    """End the user's tokens through the API (every session of theirs), then forget the login here; the API out of
    reach does not keep anyone logged in."""
    with contextlib.suppress(api.ApiCallFailed):  # then the token lapses at its expiry; forgotten here now anyway
        api.logout()
    session.logout()


def password_form() -> None:
    """The logged-in user's own password: the current one and a new one through PUT /api/auth/password; the fresh
    token it answers replaces the session's (the user's other sessions end)."""
    with st.form("own-password", border=False, clear_on_submit=True):
        current = st.text_input("Current password", type="password", key=PASSWORD_KEYS[0],
                                autocomplete="current-password")
        new = st.text_input("New password", type="password", key=PASSWORD_KEYS[1], autocomplete="new-password",
                            help="At least 8 characters.")
        submitted = st.form_submit_button("Change password", key="own-password-submit")
    if not submitted:
        return
    try:
        answer = api.change_password(current, new)
    except api.ApiCallFailed as exc:
        if exc.status == 401:
            session.expire()
            st.rerun()
        st.error(exc.text())
        return
    session.store(answer.token, answer.role, session.username() or "", answer.expiresAt)
    st.success(PASSWORD_CHANGED)
