"""Logins, roles and users under streamlit's AppTest: the login form against a real API, tokens that lapse or are
refused, buttons that need a role, and the admin's Users page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from contract.roles import Role
from db.models import Service, User
from engine.api import create_app
from engine.clock import FakeClock, SystemClock
from engine.runtime import Runtime
from engine.security.tokens import TokenIssuer
from tests.conftest import TEST_JWT_SECRET
from tests.ui.conftest import logged_in_token, open_page, texts
from tests.ui.test_pages import seed_fleet, seed_logs
from ui import login, session


def login_form_shown(at: AppTest) -> bool:
    """The login form's fields are on the page (and nothing else asks for input)."""
    return [t.label for t in at.text_input] == ["Username", "Password"] and bool(at.button(key="login-submit"))


def submit_login(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="login-username").input(username)
    at.text_input(key="login-password").input(password)
    return at.button(key="login-submit").click().run()


def test_app_without_a_token_shows_only_the_login_form(dash_env):
    at = open_page("app.py", role=None)
    assert not at.exception
    assert login_form_shown(at)
    assert texts(at.title) == ["Microservice Monitor"]
    assert not at.metric  # no Overview behind the form
    assert any("admin_password" in c and "make run" in c for c in texts(at.caption))
    assert not at.sidebar.button  # no Log out
    for page in ("pages/overview.py", "pages/services.py", "pages/logs.py", "pages/users.py",
                 "pages/load_balancer.py", "pages/resilience.py"):
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(page)  # not registered until a login succeeds


def test_login_with_the_live_api_stores_the_admin_role_and_shows_every_page(live_api, dash_env):
    at = submit_login(open_page("app.py", role=None), "admin", "admin-password-for-tests")
    assert not at.exception and not at.error
    assert at.session_state[session.ROLE_KEY] == "admin"
    assert at.session_state[session.USER_KEY] == "admin"
    token = logged_in_token(at)
    assert token is not None
    claims = live_api.tokens.verify(token)  # a real token from the engine, not a made-up one
    assert (claims.username, claims.role) == ("admin", Role.ADMIN)
    expires = at.session_state[session.EXPIRES_KEY]
    assert abs((expires - claims.expires_at).total_seconds()) < 1
    assert login.PASSWORD_WIDGET not in at.session_state  # the password is not kept
    assert texts(at.title) == ["Overview"]
    assert ":material/person: admin (admin)" in texts(at.sidebar.markdown)
    at.switch_page("pages/users.py").run()
    assert texts(at.title) == ["Users"]
    assert at.dataframe[0].value["username"].tolist() == ["admin"]


def test_wrong_password_shows_the_api_error_and_stores_no_token(live_api, dash_env):
    at = submit_login(open_page("app.py", role=None), "admin", "not-the-password")
    assert not at.exception
    assert texts(at.error) == ["wrong username or password"]
    assert logged_in_token(at) is None
    assert session.ROLE_KEY not in at.session_state
    assert login.PASSWORD_WIDGET not in at.session_state  # a typed password is not kept
    assert login_form_shown(at)
    assert texts(at.title) == ["Microservice Monitor"]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/overview.py")


def test_too_many_failed_logins_show_the_retry_after(dash_env, settings):
    rt = Runtime.open(settings.replace(login_attempts=2, login_refill=30.0))
    rt.start(app=create_app(rt))
    try:
        at = open_page("app.py", role=None)
        for _ in range(2):
            submit_login(at, "admin", "wrong-password")
            assert texts(at.error) == ["wrong username or password"]
        submit_login(at, "admin", "admin-password-for-tests")  # right, but the address is locked out
    finally:
        rt.stop()
    [error] = texts(at.error)
    match = re.fullmatch(r"Too many failed logins from this address\. Try again in (\d+) s\.", error)
    assert match is not None, error
    assert 1 <= int(match.group(1)) <= 30  # one attempt is earned back every 30 s
    assert logged_in_token(at) is None


def test_log_out_clears_the_session(dash_env):
    at = open_page("app.py", role=Role.VIEWER)
    assert texts(at.title) == ["Overview"]
    at.button(key="logout").click().run()
    assert not at.exception
    assert logged_in_token(at) is None
    assert login_form_shown(at)
    assert not at.warning  # logging out on purpose is not an expired session


@pytest.mark.parametrize("page", ["pages/overview.py", "pages/services.py", "pages/logs.py", "pages/users.py",
                                  "pages/load_balancer.py", "pages/resilience.py"])
def test_a_page_run_on_its_own_asks_for_a_login(dash_env, page):
    at = open_page(page, role=None)
    assert not at.exception
    assert login_form_shown(at)
    assert texts(at.title) == ["Microservice Monitor"]
    assert not at.dataframe and not at.metric


@pytest.mark.parametrize(("role", "disabled"), [(Role.VIEWER, True), (Role.OPERATOR, False), (Role.ADMIN, False)],
                         ids=["viewer", "operator", "admin"])
def test_action_buttons_need_the_operator_role(dash_env, role, disabled):
    seed_fleet(dash_env, datetime.now(UTC))
    seed_logs(dash_env, datetime.now(UTC))
    at = open_page("pages/services.py", role=role)
    assert not at.exception
    assert len(at.dataframe[0].value) == 3  # reads stay available
    help_text = f"Needs the operator role; you are logged in as {role.label}." if disabled else ""
    for key in ("reg-submit", "edit-submit-1", "delete-submit"):
        button = at.button(key=key)
        assert (button.proto.disabled, button.proto.help) == (disabled, help_text), key
    at = open_page("pages/logs.py", role=role)
    assert at.dataframe[0].value["message"].tolist() == ["payments unreachable", "service orders registered"]
    clear = at.button(key="logs-clear")
    assert (clear.proto.disabled, clear.proto.help) == (disabled, help_text)


def _expired_token() -> str:
    """Signed with the right secret but lapsed two hours ago (the session still thinks it is valid)."""
    clock = FakeClock(datetime.now(UTC) - timedelta(hours=2))
    return TokenIssuer(TEST_JWT_SECRET, 60, clock).issue("test-operator", Role.OPERATOR, 0)[0]


def _foreign_token() -> str:
    """Well-formed but signed with another secret (e.g. the engine's secret changed)."""
    return TokenIssuer("another-secret-0123456789-abcdefghijkl", 3600, SystemClock()).issue(
        "test-operator", Role.OPERATOR, 0)[0]


@pytest.mark.parametrize("make_token", [_expired_token, _foreign_token, lambda: "not-a-jwt"],
                         ids=["expired", "wrong-secret", "garbage"])
def test_a_rejected_token_clears_the_session_and_asks_to_log_in_again(live_api, dash_env, make_token):
    at = open_page("pages/services.py", role=Role.OPERATOR, token=make_token())
    assert texts(at.title) == ["Services"]  # the page trusts the session until the API says otherwise
    at.text_input(key="reg-name").input("billing")
    at.text_area(key="reg-urls").input("http://127.0.0.1:7991")
    at.button(key="reg-submit").click().run()
    assert not at.exception
    assert texts(at.warning) == [session.EXPIRED]
    assert not at.error
    assert logged_in_token(at) is None
    assert session.ROLE_KEY not in at.session_state
    assert login_form_shown(at)
    with dash_env() as s:
        assert s.scalar(select(func.count()).select_from(Service)) == 0


def test_a_session_past_its_expiry_asks_to_log_in_without_calling_the_api(dash_env):
    at = open_page("pages/overview.py", role=Role.OPERATOR, expires_in=timedelta(seconds=-1))
    assert not at.exception
    assert texts(at.warning) == [session.EXPIRED]
    assert login_form_shown(at)
    assert logged_in_token(at) is None
    assert not at.metric


def test_users_page_is_for_admins_only(dash_env):
    at = open_page("pages/users.py", role=Role.OPERATOR)
    assert not at.exception
    assert texts(at.error) == ["Managing users needs the admin role; you are logged in as test-operator (operator)."]
    assert not at.dataframe and not at.text_input


def test_admin_lists_adds_and_removes_users(live_api, dash_env):
    at = open_page("pages/users.py", role=Role.ADMIN, username="admin")
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert (table["username"].tolist(), table["role"].tolist()) == (["admin"], ["admin"])
    assert at.selectbox(key="user-role").options == ["viewer", "operator", "admin"]

    at.text_input(key="user-name").input("vera")
    at.text_input(key="user-password").input("short")
    at.button(key="user-add").click().run()
    [error] = texts(at.error)
    assert "HTTP 422" in error and "- password: " in error
    with dash_env() as s:
        assert s.scalars(select(User.username)).all() == ["admin"]

    at.text_input(key="user-password").input("viewer-password-1")
    at.selectbox(key="user-role").set_value("viewer")
    at.button(key="user-add").click().run()
    assert not at.exception and not at.error
    assert texts(at.success) == ["User vera added as viewer."]
    with dash_env() as s:
        vera = s.scalars(select(User).where(User.username == "vera")).one()
        assert vera.role == "viewer"
        assert vera.password_hash.startswith("$argon2") and "viewer-password-1" not in vera.password_hash
    assert at.dataframe[0].value["username"].tolist() == ["admin", "vera"]
    assert at.text_input(key="user-name").value == ""  # the form was reset after success
    assert at.selectbox(key="user-delete").options == ["vera (viewer)"]  # never yourself

    at.button(key="user-delete-submit").click().run()
    assert texts(at.warning) == ["Tick the confirmation box to remove the user."]
    at.checkbox(key="user-delete-confirm").check()
    at.button(key="user-delete-submit").click().run()
    assert not at.error
    assert texts(at.success) == ["user vera removed"]
    with dash_env() as s:
        assert s.scalars(select(User.username)).all() == ["admin"]
    assert at.dataframe[0].value["username"].tolist() == ["admin"]
