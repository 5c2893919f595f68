"""The dashboard pages under streamlit's AppTest, on a real PostgreSQL (and a real API for logins and buttons)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from contract.roles import Role
from db.models import Instance, LogEntry, MetricRow, Service
from tests.conftest import free_port
from tests.ui.conftest import heatmap_rows, metrics, open_page, texts


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
