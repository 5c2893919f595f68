"""The dashboard's own session against a real API: logging out ends the token in the engine too, a password change
keeps this session (a fresh token) and ends the others, which then ask for a login; the browser's address goes to
the API only with the engine's secret."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from contract.roles import CLIENT_ADDRESS_HEADER, DASHBOARD_SECRET_HEADER, DASHBOARD_SECRET_VAR, Role
from engine.runtime import Runtime
from tests.ui.conftest import log_in, logged_in_token, open_page, texts
from ui import api, login, session

OLD, NEW = "admin-password-for-tests", "a-brand-new-password"


def logged_in_as_admin() -> AppTest:
    """The app, logged in with a real token of the admin."""
    token = api.login("admin", OLD).token
    at = open_page("app.py", role=Role.ADMIN, token=token, username="admin")
    assert texts(at.title) == ["Overview"] and logged_in_token(at) == token
    return at


def password_form_script() -> None:
    from ui import login

    login.password_form()


def answers(token: str) -> int:
    return api.ApiClient(api.api_url(), token=token)._send("GET", "/api/overview", None, (401,))[0]


def test_log_out_ends_the_token_in_the_engine(live_api: Runtime, dash_env):
    at = logged_in_as_admin()
    token = logged_in_token(at)
    assert token is not None and answers(token) == 200
    at.button(key="logout").click().run()
    assert not at.exception and logged_in_token(at) is None
    assert answers(token) == 401  # not only forgotten here: over in the engine


def test_a_password_change_keeps_this_session_and_sends_the_others_to_the_login(live_api: Runtime, dash_env):
    there = logged_in_as_admin()
    old_token = api.login("admin", OLD).token
    # the form app.py shows in the sidebar, on its own (AppTest keeps no sidebar past the first run)
    here = AppTest.from_function(password_form_script, default_timeout=30)
    log_in(here, Role.ADMIN, token=old_token, username="admin")
    here.run()
    here.text_input(key="own-password-current").input("not-it")
    here.text_input(key="own-password-new").input(NEW)
    here = here.button(key="own-password-submit").click().run()
    assert [e.startswith("the current password is wrong (HTTP 403)") for e in texts(here.error)] == [True]
    assert logged_in_token(here) == old_token and answers(old_token) == 200  # a refused change ends nothing

    here.text_input(key="own-password-current").input(OLD)
    here.text_input(key="own-password-new").input(NEW)
    here = here.button(key="own-password-submit").click().run()
    assert not here.exception and texts(here.success) == [login.PASSWORD_CHANGED]
    fresh = logged_in_token(here)
    assert fresh is not None and fresh != old_token and answers(fresh) == 200
    assert answers(old_token) == 401

    there.switch_page("pages/users.py").run()  # its next API call is refused: back to the login, saying why
    assert texts(there.warning) == [session.EXPIRED]
    assert logged_in_token(there) is None
    assert api.login("admin", NEW).role == "admin"


@pytest.mark.parametrize(("secret", "address", "sent"), [
    ("s3cret", "203.0.113.5", {CLIENT_ADDRESS_HEADER: "203.0.113.5", DASHBOARD_SECRET_HEADER: "s3cret"}),
    ("s3cret", None, {}),  # a browser on this host: the API's own view is right
    (None, "203.0.113.5", {}),  # a dashboard started by hand has no secret to prove it
], ids=["started-by-the-engine", "local-browser", "no-secret"])
def test_the_browsers_address_is_sent_only_with_the_engines_secret(monkeypatch, secret, address, sent):
    if secret is None:
        monkeypatch.delenv(DASHBOARD_SECRET_VAR, raising=False)
    else:
        monkeypatch.setenv(DASHBOARD_SECRET_VAR, secret)
    assert api.browser_headers(address) == sent
