"""The Load Balancer and Resilience pages under AppTest: live engine state through the API, transitions from SQL."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from contract.roles import Role
from db.models import BreakerTransitionRow, CircuitBreakerRow, Instance, Service
from engine.runtime import Runtime
from engine.traffic.balancer import ALGORITHMS
from engine.traffic.breaker import BreakerState
from tests.conftest import wait_for
from tests.ui.conftest import chart_traces, metrics, open_page, texts

ORDERS = ("http://127.0.0.1:7101", "http://127.0.0.1:7102")
PAYMENTS = ("http://127.0.0.1:7201",)


def register_fleet(sessions: sessionmaker[Session], rt: Runtime | None = None) -> dict[str, int]:
    """orders (2 instances) and payments (1) in the database, and in the engine's registry; url -> instance id."""
    with sessions.begin() as s:
        s.add(Service(name="orders", instances=[Instance(url=u) for u in ORDERS]))
        s.add(Service(name="payments", instances=[Instance(url=u) for u in PAYMENTS]))
    if rt is not None:
        rt.reload_registry()
    with sessions() as s:
        return {i.url: i.id for i in s.scalars(select(Instance))}


TABLE_COLUMNS = {"bk-table": "opens after", "bk-transitions": "reason"}


def table(at: AppTest, key: str) -> pd.DataFrame:
    """The frame of the st.dataframe with this key (found by a column only it has: a display-only table's proto
    carries no key)."""
    found = [d.value for d in at.dataframe if TABLE_COLUMNS[key] in d.value.columns]
    assert len(found) == 1, f"{len(found)} tables like {key!r}"
    return found[0]


def open_breaker(rt: Runtime, service: str, reason: str = "HTTP 503") -> None:
    """Five admitted calls that fail: the default thresholds open the breaker."""
    assert rt.breakers is not None
    breaker = rt.breakers.get(service)
    for _ in range(5):
        assert breaker.allow()
        breaker.record_failure(reason)
    assert breaker.state is BreakerState.OPEN


# -- load balancer -----------------------------------------------------------------------------------


def test_load_balancer_shows_picks_per_instance_and_switches_the_algorithm(live_api, dash_env):
    ids = register_fleet(dash_env, live_api)
    at = open_page("pages/load_balancer.py")
    assert not at.exception and not at.error
    assert metrics(at)["Algorithm"] == "round-robin"
    assert metrics(at)["Total picks"] == "0"
    assert at.selectbox(key="lb-algorithm").value == "round-robin"
    assert at.selectbox(key="lb-algorithm").options == [
        f"{name} — {desc}" for name, desc in (
            ("consistent-hash", "a hash ring on the X-Route-Key header"), ("least-load",
             "the instance with the fewest requests in flight"), ("p2c", "the less busy of two random instances"),
            ("random", "uniformly at random"), ("round-robin", "each instance in turn"),
            ("weighted", "smooth weighted round-robin by instance weight"))
    ]
    assert len(ALGORITHMS) == 6
    frame = at.dataframe[0].value
    assert frame["service"].tolist() == ["orders", "orders", "payments"]
    assert frame["instance URL"].tolist() == [*ORDERS, *PAYMENTS]
    assert frame["picks"].tolist() == [0, 0, 0]
    assert frame["ejected"].tolist() == [False, False, False]
    assert all(math.isnan(v) for v in frame["share %"])  # no picks yet: n/a, not 0 %
    assert at.dataframe[0].proto.placeholder == "n/a"
    assert "No requests routed yet" in texts(at.info)[0]
    assert not at.get("plotly_chart")

    # picks as the router counts them (the proxy end to end is tests/e2e/test_proxy.py)
    for spec in live_api.registry.services():  # the router makes its targets on its first request
        live_api.router.candidates(spec)
    targets = live_api.router.targets
    targets[ids[ORDERS[0]]].picks, targets[ids[ORDERS[1]]].picks = 3, 1
    targets[ids[ORDERS[1]]].in_flight = 2
    at.run()
    frame = at.dataframe[0].value
    assert frame["picks"].tolist() == [3, 1, 0]
    assert frame["in flight"].tolist() == [0, 2, 0]
    assert frame["share %"].tolist()[:2] == [75.0, 25.0]
    assert math.isnan(frame["share %"].iloc[2])  # payments has had no pick
    assert metrics(at)["Total picks"] == "4"
    assert metrics(at)["In flight"] == "2"
    assert chart_traces(at, "lb-picks") == {"orders": [3, 1], "payments": [0]}

    at.selectbox(key="lb-algorithm").set_value("p2c")
    at.button(key="lb-apply").click().run()
    assert not at.exception and not at.error
    assert live_api.router.algorithm == "p2c"
    assert texts(at.success) == ["Load balancer algorithm is now p2c."]
    assert metrics(at)["Algorithm"] == "p2c"
    assert at.selectbox(key="lb-algorithm").value == "p2c"

    at.button(key="lb-apply").click().run()  # the same algorithm again: no request
    assert "The balancer already uses p2c." in texts(at.info)


def test_load_balancer_with_the_api_down_says_so(dash_env):
    at = open_page("pages/load_balancer.py")
    assert not at.exception
    assert any("is not reachable" in e for e in texts(at.error))
    assert not at.metric


# -- roles ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "disabled"), [(Role.VIEWER, True), (Role.OPERATOR, False)],
                         ids=["viewer", "operator"])
def test_traffic_actions_need_the_operator_role(live_api, dash_env, role, disabled):
    register_fleet(dash_env, live_api)
    help_text = f"Needs the operator role; you are logged in as {role.label}." if disabled else None
    at = open_page("pages/load_balancer.py", role=role)
    assert not at.exception and not at.error
    assert metrics(at)["Algorithm"] == "round-robin"  # reads stay available
    apply = at.button(key="lb-apply")
    assert (apply.proto.disabled, apply.proto.help or None) == (disabled, help_text)

    at = open_page("pages/resilience.py", role=role)
    assert not at.exception and not at.error
    assert metrics(at)["Breakers"] == "2"
    for key in ("bk-reset-orders", "bk-reset-payments", "bk-reset-all", "bk-submit-orders"):
        button = at.button(key=key)
        assert button.proto.disabled == disabled, key
        if disabled:
            assert button.proto.help == help_text, key


# -- resilience ----------------------------------------------------------------------------------------


def test_resilience_shows_an_open_breaker_and_reset_closes_it(live_api, dash_env):
    register_fleet(dash_env, live_api)
    open_breaker(live_api, "orders")
    at = open_page("pages/resilience.py")
    assert not at.exception and not at.error
    m = metrics(at)
    assert (m["Breakers"], m["Closed"], m["Open"], m["Half-open"]) == ("2", "1", "1", "0")
    frame = table(at, "bk-table")
    assert frame["service"].tolist() == ["orders", "payments"]
    assert frame["state"].tolist() == ["🔴 OPEN", "🟢 CLOSED"]
    assert frame["failures"].tolist() == [5, 0]
    assert frame["failure rate %"].iloc[0] == 100.0
    assert math.isnan(frame["failure rate %"].iloc[1])  # no call yet: n/a
    assert frame["opens after"].tolist() == ["5 in a row or 50 %"] * 2
    assert frame["slow call"].tolist() == ["off", "off"]
    # nothing routed: the rates are n/a, the counts 0
    assert (m["Retry success rate"], m["Fallback rate"], m["Timeout rate"]) == ("n/a", "n/a", "n/a")
    assert (m["Retries"], m["Fallbacks"], m["Timeouts"], m["Budget refusals"]) == ("0", "0", "0", "0")
    assert m["Ejected instances"] == "0"

    # a refused call is counted as rejected
    assert not live_api.breakers.get("orders").allow()
    at.button(key="bk-reset-orders").click().run()
    assert not at.exception and not at.error
    assert live_api.breakers.get("orders").state is BreakerState.CLOSED
    assert texts(at.success) == ["Breaker orders reset: CLOSED."]
    m = metrics(at)
    assert (m["Closed"], m["Open"]) == ("2", "0")
    assert at.dataframe[0].value["failures"].tolist() == [0, 0]  # a reset empties the counters too

    # both transitions reach PostgreSQL through the writer and show with their reasons
    def transitions():
        with dash_env() as s:
            return s.execute(select(BreakerTransitionRow.to_state).order_by(BreakerTransitionRow.id)).scalars().all()

    assert wait_for(lambda: transitions() == ["OPEN", "CLOSED"])
    at.run()
    log = table(at, "bk-transitions")
    assert log["to"].tolist() == ["🟢 CLOSED", "🔴 OPEN"]  # newest first
    assert log["reason"].tolist() == ["manual reset", "5 consecutive failures (last: HTTP 503)"]


def test_reset_all_closes_every_breaker(live_api, dash_env):
    register_fleet(dash_env, live_api)
    open_breaker(live_api, "orders")
    open_breaker(live_api, "payments")
    at = open_page("pages/resilience.py")
    assert metrics(at)["Open"] == "2"
    at.button(key="bk-reset-all").click().run()
    assert not at.error
    assert texts(at.success) == ["2 breaker(s) reset."]
    assert [b.state for b in live_api.breakers.all()] == [BreakerState.CLOSED] * 2
    assert metrics(at)["Open"] == "0"


def test_threshold_form_sends_changes_and_shows_the_apis_422(live_api, dash_env):
    register_fleet(dash_env, live_api)
    at = open_page("pages/resilience.py")
    assert at.selectbox(key="bk-service").options == ["orders", "payments"]
    assert at.number_input(key="bk-failureThreshold-orders").value == 5
    assert at.number_input(key="bk-slowCallMs-orders").value is None

    at.button(key="bk-submit-orders").click().run()  # nothing changed: no request
    assert "Nothing changed." in texts(at.info)

    at.number_input(key="bk-failureThreshold-orders").set_value(3)
    at.button(key="bk-submit-orders").click().run()
    assert not at.exception and not at.error
    assert texts(at.success) == ["Breaker orders thresholds changed: failureThreshold."]
    config = live_api.breakers.get("orders").config
    assert (config.failure_threshold, config.minimum_calls, config.window_size) == (3, 10, 20)
    with dash_env() as s:
        row = s.scalars(select(CircuitBreakerRow).where(CircuitBreakerRow.service_name == "orders")).one()
        assert row.failure_threshold == 3
    assert at.number_input(key="bk-failureThreshold-orders").value == 3  # the form shows the stored value
    assert at.dataframe[0].value["opens after"].tolist() == ["3 in a row or 50 %", "5 in a row or 50 %"]

    at.number_input(key="bk-minimumCalls-orders").set_value(30)  # more than the window of 20
    at.button(key="bk-submit-orders").click().run()
    assert not at.exception and not at.success
    [error] = texts(at.error)
    assert error.startswith("invalid request: minimumCalls (HTTP 422)")
    assert "- minimumCalls: minimumCalls must be between 1 and windowSize" in error
    config = live_api.breakers.get("orders").config
    assert (config.failure_threshold, config.minimum_calls) == (3, 10)  # nothing changed
    with dash_env() as s:
        row = s.scalars(select(CircuitBreakerRow).where(CircuitBreakerRow.service_name == "orders")).one()
        assert row.minimum_calls == 10


def test_transition_timeline_from_the_database(dash_env):
    """Seeded transitions; without an API the page says so and still draws what PostgreSQL holds."""
    register_fleet(dash_env)
    now = datetime.now(UTC)
    rows = [  # (service, from, to, reason, minutes ago)
        ("orders", "CLOSED", "OPEN", "outside the window", 120),
        ("orders", "CLOSED", "OPEN", "5 consecutive failures (last: HTTP 503)", 10),
        ("orders", "OPEN", "HALF_OPEN", "open for 60000 ms", 9),
        ("orders", "HALF_OPEN", "CLOSED", "1 trial call(s) succeeded", 8),
        ("payments", "CLOSED", "OPEN", "failure rate 60% over the last 20 calls", 2),
    ]
    with dash_env.begin() as s:
        s.add_all(BreakerTransitionRow(service_name=svc, from_state=a, to_state=b, reason=why,
                                       at=now - timedelta(minutes=ago)) for svc, a, b, why, ago in rows)
    at = open_page("pages/resilience.py")
    assert not at.exception
    assert any("is not reachable" in e for e in texts(at.error))
    assert not at.metric  # breakers and counters live in the engine
    log = table(at, "bk-transitions")
    assert log["reason"].tolist() == [
        "failure rate 60% over the last 20 calls", "1 trial call(s) succeeded", "open for 60000 ms",
        "5 consecutive failures (last: HTTP 503)",
    ]  # newest first, the 2 h old one outside the 1 h window
    assert log["service"].tolist() == ["payments", "orders", "orders", "orders"]
    assert log["from"].tolist() == ["🟢 CLOSED", "🟠 HALF_OPEN", "🔴 OPEN", "🟢 CLOSED"]
    # spans per state: orders CLOSED, OPEN, HALF_OPEN, CLOSED; payments CLOSED, OPEN
    assert chart_traces(at, "bk-timeline") == {
        "CLOSED": ["orders", "orders", "payments"], "HALF_OPEN": ["orders"], "OPEN": ["orders", "payments"],
    }
    spec = json.loads(next(c for c in at.get("plotly_chart") if c.proto.id.endswith("bk-timeline")).proto.spec)
    open_trace = next(t for t in spec["data"] if t["name"] == "OPEN")
    assert open_trace["x"][0] == pytest.approx(60_000.0)  # orders was OPEN for one minute

    at.selectbox(key="tl-service").set_value("payments").run()
    assert table(at, "bk-transitions")["reason"].tolist() == ["failure rate 60% over the last 20 calls"]
    assert chart_traces(at, "bk-timeline") == {"CLOSED": ["payments"], "OPEN": ["payments"]}

    at.selectbox(key="tl-service").set_value("orders")
    at.selectbox(key="tl-window").set_value("24 h").run()
    assert table(at, "bk-transitions")["reason"].tolist()[-1] == "outside the window"
    assert len(table(at, "bk-transitions")) == 4

    at.selectbox(key="tl-window").set_value("15 min")
    at.selectbox(key="tl-service").set_value("any").run()
    assert len(table(at, "bk-transitions")) == 4
