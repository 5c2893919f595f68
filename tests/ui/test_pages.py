"""The dashboard pages under streamlit's AppTest, on a real PostgreSQL (and a real API for logins and buttons)."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from contract.roles import Role
from db.models import Instance, LogEntry, MetricRow, Service, User
from engine.clock import FakeClock, SystemClock
from engine.runtime import Runtime
from engine.security.tokens import TokenIssuer
from tests.conftest import TEST_JWT_SECRET, free_port
from tests.ui.conftest import heatmap_rows, logged_in_token, metrics, open_page, texts
from ui import login, session


def seed_fleet(sessions: sessionmaker[Session], now: datetime) -> None:
    """orders (healthy, 2 instances, 1 healthy), payments (unhealthy, 1 instance), and a fresh metrics bucket."""
    with sessions.begin() as s:
        s.add(Service(name="orders", status="healthy", metrics_path="/metrics", instances=[
            Instance(url="http://127.0.0.1:7101", status="healthy", latency_ms=3.25,
                     last_health_check=now - timedelta(seconds=4)),
            Instance(url="http://127.0.0.1:7102", status="unknown"),
        ]))
        s.add(Service(name="payments", status="unhealthy", instances=[
            Instance(url="http://127.0.0.1:7201", status="unhealthy", last_error="connection refused",
                     last_health_check=now - timedelta(seconds=2)),
        ]))
        s.add(MetricRow(service_name="orders", timestamp=now - timedelta(seconds=10), bucket_seconds=5,
                        request_count=0, error_count=0, cpu_percent=12.5, memory_mb=64.0, instances_scraped=2))


def seed_logs(sessions: sessionmaker[Session], now: datetime) -> None:
    """An INFO row from registry and an ERROR row from health."""
    with sessions.begin() as s:
        s.add(LogEntry(timestamp=now - timedelta(seconds=2), level="INFO", source="registry",
                       message="service orders registered", metadata_={"service": "orders"}))
        s.add(LogEntry(timestamp=now - timedelta(seconds=1), level="ERROR", source="health",
                       message="payments unreachable", metadata_=None))


# -- overview ----------------------------------------------------------------------------------------


def test_overview_without_traffic_shows_na_not_zero(dash_env):
    seed_fleet(dash_env, datetime.now(UTC))
    at = open_page("pages/overview.py")
    assert not at.exception
    m = metrics(at)
    assert m["Active services"] == "1 / 2"
    assert m["Healthy instances"] == "1 / 3"
    assert m["Requests / min"] == "0.0"
    assert m["Avg response time"] == "n/a"
    assert m["Error rate"] == "n/a"
    assert m["System status"] == "🟠 degraded"
    assert m["CPU"] == "12.5 %"
    assert m["Memory"] == "64.0 MB"


def test_overview_traffic_figures_come_from_metrics(dash_env):
    with dash_env.begin() as s:
        s.add(Service(name="orders", status="healthy", instances=[Instance(url="http://127.0.0.1:7101",
                                                                          status="healthy")]))
        for ago, requests, errors, latency in ((5, 30, 0, 10.0), (10, 10, 2, 50.0)):
            at = datetime.now(UTC) - timedelta(seconds=ago)
            s.add(MetricRow(service_name="orders", timestamp=at, bucket_seconds=5,
                            request_count=requests, error_count=errors, latency_avg_ms=latency,
                            instances_scraped=0))
        # a service deleted since: its rows are not the fleet's traffic any more
        s.add(MetricRow(service_name="gone", timestamp=datetime.now(UTC) - timedelta(seconds=5), bucket_seconds=5,
                        request_count=1000, error_count=1000, latency_avg_ms=999.0, instances_scraped=0))
    m = metrics(open_page("pages/overview.py"))
    assert m["Requests / min"] == "40.0"  # 40 requests in the 60 s window
    assert m["Avg response time"] == "20.0 ms"  # (30*10 + 10*50) / 40
    assert m["Error rate"] == "5.0 %"
    assert m["CPU"] == "n/a"  # never scraped: unknown, not 0
    assert m["Memory"] == "n/a"
    assert m["System status"] == "🟢 healthy"


def test_overview_cards_and_charts(dash_env):
    seed_fleet(dash_env, datetime.now(UTC))
    at = open_page("pages/overview.py")
    (grid,) = [h.proto.body for h in at.get("html")]
    tints = {name: tint for tint, name in re.findall(r'<div class="mm-card (mm-\w+)" data-service="(\w+)">', grid)}
    assert tints == {"orders": "mm-healthy", "payments": "mm-unhealthy"}
    assert '🟢 <b>orders</b> <span class="mm-badge">healthy</span>' in grid
    assert '🔴 <b>payments</b> <span class="mm-badge">unhealthy</span>' in grid
    assert grid.count("Instances <b>2</b> · healthy <b>1</b>") == 1
    assert grid.count("Instances <b>1</b> · healthy <b>0</b>") == 1
    # orders' latest check was 4 s ago, payments' 2 s ago; neither is managed
    assert re.search(r"Last check [45] s ago · external", grid) and re.search(r"Last check [23] s ago · external", grid)
    assert heatmap_rows(at, "chart-cpu_percent") == {"orders": [12.5]}  # payments was never scraped: no row
    assert heatmap_rows(at, "chart-memory_mb") == {"orders": [64.0]}


def test_overview_empty_database(dash_env):
    at = open_page("pages/overview.py")
    m = metrics(at)
    assert m["Active services"] == "0 / 0"
    assert m["System status"] == "⚪ unknown"
    assert m["CPU"] == "n/a"
    assert any("No services registered yet" in i for i in texts(at.info))
    assert not at.get("plotly_chart")


def test_without_database_url_the_page_explains_how_to_start(dash_env, monkeypatch):
    monkeypatch.delenv("DATABASE_URL")
    at = open_page("pages/overview.py")
    assert not at.exception
    assert any("python -m engine up" in e for e in texts(at.error))
    assert not at.metric


PAGE_FILES = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "pages").glob("*.py"))
RETRY_NOTES = ("This page tries again every 5 s.", "The page retries on its next refresh.")


@pytest.mark.parametrize("page", PAGE_FILES)
def test_with_neither_database_nor_api_each_page_says_so_and_that_it_retries(dash_env, monkeypatch, page):
    # API_URL already names a port nothing listens on; now the database's too
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    at = open_page(f"pages/{page}", Role.ADMIN)
    assert not at.exception
    errors = texts(at.error)
    assert errors, "nothing said"
    for e in errors:
        assert "Traceback" not in e
        assert "not reachable" in e or "could not reach" in e.lower(), e
        assert e.endswith(RETRY_NOTES), f"does not say it retries: {e}"


def test_app_navigates_between_pages(dash_env):
    at = open_page("app.py", role=Role.OPERATOR)
    assert not at.exception
    assert texts(at.title) == ["Overview"]
    assert any("API http://127.0.0.1:" in c for c in texts(at.sidebar.caption))
    assert texts(at.sidebar.markdown) == [":material/person: test-operator (operator)"]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/users.py")  # admins only: not in an operator's navigation
    # AppTest runs a switched-to page file directly (streamlit's pages/-directory mode), so each page checks
    # the login itself: see test_a_page_run_on_its_own_asks_for_a_login
    at.switch_page("pages/logs.py").run()
    assert texts(at.title) == ["Logs"]
    at.switch_page("pages/services.py").run()
    assert texts(at.title) == ["Services"]
    # the traffic pages read the engine through the API (down here): they say so instead of raising
    at.switch_page("pages/load_balancer.py").run()
    assert texts(at.title) == ["Load Balancer"]
    at.switch_page("pages/resilience.py").run()
    assert texts(at.title) == ["Resilience"]
    assert not at.exception


# -- services ----------------------------------------------------------------------------------------


def test_services_table_lists_instances(dash_env):
    seed_fleet(dash_env, datetime.now(UTC))
    at = open_page("pages/services.py")
    assert not at.exception
    table = at.dataframe[0]
    frame = table.value
    assert frame["instance URL"].tolist() == [
        "http://127.0.0.1:7101", "http://127.0.0.1:7102", "http://127.0.0.1:7201",
    ]
    assert frame["status"].tolist() == ["🟢 healthy", "🟢 healthy", "🔴 unhealthy"]
    assert frame["instance status"].tolist() == ["🟢 healthy", "⚪ unknown", "🔴 unhealthy"]
    assert frame["latency ms"].iloc[0] == 3.25
    assert math.isnan(frame["latency ms"].iloc[1])  # not measured: shown through the placeholder
    assert table.proto.placeholder == "n/a"
    assert frame["last error"].iloc[2] == "connection refused"


def test_register_service_through_the_api(live_api, dash_env):
    at = open_page("pages/services.py")
    at.text_input(key="reg-name").input("billing")
    at.text_area(key="reg-urls").input("http://127.0.0.1:7991\n\nhttp://127.0.0.1:7992\n")
    at.text_input(key="reg-metrics").input("/metrics")
    at.number_input(key="reg-weight").set_value(3)
    at.button(key="reg-submit").click().run()
    assert not at.exception
    assert not at.error
    assert texts(at.success) == ["Service billing registered with 2 instance(s)."]
    with dash_env() as s:
        service = s.scalars(select(Service)).one()
        assert (service.name, service.weight, service.health_path, service.metrics_path) == (
            "billing", 3, "/health", "/metrics")
        assert [i.url for i in service.instances] == ["http://127.0.0.1:7991", "http://127.0.0.1:7992"]
    assert at.text_input(key="reg-name").value == ""  # the form was reset after success
    assert "billing" in at.dataframe[0].value["service"].tolist()


def test_register_with_empty_name_shows_the_field_and_writes_nothing(live_api, dash_env):
    at = open_page("pages/services.py")
    at.text_area(key="reg-urls").input("http://127.0.0.1:7991")
    at.button(key="reg-submit").click().run()
    assert not at.exception
    errors = texts(at.error)
    assert len(errors) == 1
    assert "HTTP 422" in errors[0]
    assert "- name: " in errors[0]
    assert not at.success
    with dash_env() as s:
        assert s.scalar(select(func.count()).select_from(Service)) == 0


def test_register_when_the_api_is_down_says_so(dash_env):
    at = open_page("pages/services.py")
    at.text_input(key="reg-name").input("billing")
    at.text_area(key="reg-urls").input("http://127.0.0.1:7991")
    at.button(key="reg-submit").click().run()
    assert not at.exception
    assert any("is not reachable" in e for e in texts(at.error))


def test_edit_sends_only_changed_fields_and_delete_needs_confirmation(live_api, dash_env):
    with dash_env.begin() as s:
        s.add(Service(name="orders", health_path="/health", weight=1,
                      instances=[Instance(url="http://127.0.0.1:7101")]))
    live_api.reload_registry()
    at = open_page("pages/services.py")
    at.number_input(key="edit-weight-1").set_value(5)
    at.text_area(key="edit-urls-1").input("http://127.0.0.1:7101\nhttp://127.0.0.1:7102")
    at.button(key="edit-submit-1").click().run()
    assert not at.exception and not at.error
    assert texts(at.success) == ["Service orders updated: weight, instances."]
    with dash_env() as s:
        service = s.scalars(select(Service)).one()
        assert (service.weight, service.health_path) == (5, "/health")
        assert [i.url for i in service.instances] == ["http://127.0.0.1:7101", "http://127.0.0.1:7102"]

    at.button(key="edit-submit-1").click().run()  # nothing changed now: no request
    assert texts(at.info)[-1] == "Nothing changed."

    at.button(key="delete-submit").click().run()
    assert texts(at.warning) == ["Tick the confirmation box to delete."]
    with dash_env() as s:
        assert s.scalar(select(func.count()).select_from(Service)) == 1

    at.checkbox(key="delete-confirm").check()
    at.button(key="delete-submit").click().run()
    assert not at.error
    assert texts(at.success) == ["service orders deleted"]
    with dash_env() as s:
        assert s.scalar(select(func.count()).select_from(Service)) == 0


# -- logs --------------------------------------------------------------------------------------------


def test_logs_filter_by_level_source_and_text(dash_env):
    seed_logs(dash_env, datetime.now(UTC))
    at = open_page("pages/logs.py")
    assert not at.exception
    frame = at.dataframe[0].value
    assert frame["message"].tolist() == ["payments unreachable", "service orders registered"]
    assert frame["metadata"].tolist() == ["", '{"service": "orders"}']
    assert at.selectbox(key="logs-source").options == ["any", "health", "registry"]

    at.selectbox(key="logs-level").set_value("ERROR").run()
    assert at.dataframe[0].value["message"].tolist() == ["payments unreachable"]
    assert at.dataframe[0].value["level"].tolist() == ["🔴 ERROR"]

    at.selectbox(key="logs-level").set_value("any")
    at.selectbox(key="logs-source").set_value("registry").run()
    assert at.dataframe[0].value["message"].tolist() == ["service orders registered"]

    at.selectbox(key="logs-source").set_value("any")
    at.text_input(key="logs-q").input("UNREACH").run()
    assert at.dataframe[0].value["message"].tolist() == ["payments unreachable"]

    at.text_input(key="logs-q").input("no such text").run()
    assert not at.dataframe
    assert "No log rows match these filters." in texts(at.info)
    assert at.get("download_button")[0].proto.disabled


def test_clear_logs_needs_confirmation_and_goes_through_the_api(live_api, dash_env):
    seed_logs(dash_env, datetime.now(UTC))
    at = open_page("pages/logs.py")
    at.button(key="logs-clear").click().run()
    assert texts(at.warning) == ["Tick the confirmation box to clear the logs."]
    with dash_env() as s:
        assert s.scalar(select(func.count()).select_from(LogEntry).where(LogEntry.source == "health")) == 1

    at.checkbox(key="logs-confirm").check()
    at.button(key="logs-clear").click().run()
    assert not at.exception and not at.error
    [message] = texts(at.success)
    deleted = int(message.removeprefix("Logs cleared: ").removesuffix(" row(s) deleted."))
    assert deleted >= 2  # the two seeded rows, plus whatever the engine logged since it started
    with dash_env() as s:
        left = s.scalars(select(LogEntry.message)).all()
    assert "payments unreachable" not in left
    assert "service orders registered" not in left


@pytest.mark.parametrize("limit", [50, 1000], ids=["limit-50", "limit-1000"])
def test_logs_row_limit(dash_env, limit):
    with dash_env.begin() as s:
        now = datetime.now(UTC)
        s.add_all(LogEntry(timestamp=now - timedelta(seconds=n), level="INFO", source="engine", message=f"m{n}")
                  for n in range(60))
    at = open_page("pages/logs.py")
    at.selectbox(key="logs-limit").set_value(limit).run()
    frame = at.dataframe[0].value
    assert len(frame) == min(limit, 60)
    assert frame["message"].iloc[0] == "m0"  # newest first


# -- login, roles, users -------------------------------------------------------------------------------


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
    rt = Runtime(dataclasses.replace(settings, login_attempts=2, login_refill=30.0))
    rt.start()
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
    return TokenIssuer(TEST_JWT_SECRET, 60, clock).issue("test-operator", Role.OPERATOR)[0]


def _foreign_token() -> str:
    """Well-formed but signed with another secret (e.g. the engine's secret changed)."""
    return TokenIssuer("another-secret-0123456789-abcdefghijkl", 3600, SystemClock()).issue(
        "test-operator", Role.OPERATOR)[0]


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
