"""The Alerts, Incidents and Notifications pages under AppTest: read views on rows seeded into a real PostgreSQL,
actions through a live API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from contract.notifications import DeliveryStatus
from contract.roles import Role
from db.alerting_models import (
    AlertChannelRow,
    AlertEventRow,
    AlertRow,
    AlertRuleRow,
    DeliveryRow,
    IncidentNoteRow,
    IncidentRow,
    SilenceRow,
)
from db.models import Instance, Service, Simulation
from tests.engine.receivers import hook
from tests.ui.conftest import chart_spec, metrics, open_page, plotly_array, texts

SLACK_URL = "https://hooks.slack.com/services/T000/B000/sEcReTtOkEn"
WEBHOOK_SECRET = "whsec-very-secret-value"


def seed_alerting(sessions: sessionmaker[Session], now: datetime) -> uuid.UUID:
    """orders and payments; a webhook and a slack channel; three rules; payments' error-rate alert firing,
    orders' pending and silenced, a resolved one; an active and an expired silence; an open incident (with two
    notes) and a resolved one; deliveries. The open incident's id."""
    open_id = uuid.uuid4()
    with sessions.begin() as s:
        s.add(Service(name="orders", status="healthy", instances=[Instance(url="http://127.0.0.1:7101")]))
        s.add(Service(name="payments", status="unhealthy", instances=[Instance(url="http://127.0.0.1:7201")]))
        s.add(AlertChannelRow(id=1, name="ops-hook", type="webhook",
                              config={"url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET}))
        s.add(AlertChannelRow(id=2, name="ops-slack", type="slack", config={"url": SLACK_URL}))
        s.add(AlertRuleRow(id=1, name="errors-high", kind="error-rate", service_name=None, threshold=5.0,
                           window_seconds=300, for_seconds=60, severity="critical", channels=[1, 2],
                           repeat_seconds=600))
        s.add(AlertRuleRow(id=2, name="p95-slow", kind="latency-p95", service_name="orders", threshold=250.0,
                           window_seconds=120, for_seconds=30, severity="warning", channels=[], repeat_seconds=None))
        s.add(AlertRuleRow(id=3, name="db-gone", kind="monitor-database", service_name=None, threshold=None,
                           window_seconds=300, for_seconds=0, severity="critical", channels=[2],
                           repeat_seconds=None))
        for fp, rule, name, kind, sev, service, state, silenced, value, threshold, ago in (
            ("fp-pay", 1, "errors-high", "error-rate", "critical", "payments", "firing", False, 12.5, 5.0, 120),
            ("fp-ord", 2, "p95-slow", "latency-p95", "warning", "orders", "pending", True, 310.0, 250.0, 20),
            ("fp-old", 1, "errors-high", "error-rate", "critical", "orders", "resolved", False, 0.0, 5.0, 900),
        ):
            s.add(AlertRow(fingerprint=fp, rule_id=rule, rule_name=name, kind=kind, severity=sev,
                           service_name=service, state=state, silenced=silenced, value=value, threshold=threshold,
                           summary=f"{name} on {service}", active_at=now - timedelta(seconds=ago),
                           fired_at=now - timedelta(seconds=ago - 60) if state != "pending" else None,
                           resolved_at=now - timedelta(seconds=60) if state == "resolved" else None,
                           updated_at=now))
        s.add(SilenceRow(service_name="orders", rule_id=2, starts_at=now - timedelta(minutes=5),
                         ends_at=now + timedelta(minutes=55), comment="deploying orders", created_by="test-operator"))
        s.add(SilenceRow(service_name="payments", rule_id=None, starts_at=now - timedelta(hours=3),
                         ends_at=now - timedelta(hours=2), comment="old maintenance", created_by="ops"))
        s.add(IncidentRow(id=open_id, service_name="payments", status="open", title="errors-high on payments",
                          severity="critical", started_at=now - timedelta(minutes=2), fingerprints=["fp-pay"]))
        s.add(IncidentRow(id=uuid.uuid4(), service_name="orders", status="resolved", title="errors-high on orders",
                          severity="critical", started_at=now - timedelta(hours=1),
                          resolved_at=now - timedelta(minutes=40), acknowledged_at=now - timedelta(minutes=55),
                          acknowledged_by="ops", expected=True, fingerprints=["fp-old"]))
        s.flush()
        s.add(IncidentNoteRow(incident_id=open_id, at=now - timedelta(minutes=1), author="ops", note="first look"))
        s.add(IncidentNoteRow(incident_id=open_id, at=now - timedelta(seconds=30), author="ops",
                              note="rolling back payments"))
        s.add(DeliveryRow(id=uuid.uuid4(), channel_id=1, channel_name="ops-hook", fingerprint="fp-pay",
                          event="firing", status="retrying", attempts=2, last_error="connection refused",
                          payload={"status": "firing"}, created_at=now - timedelta(seconds=60),
                          next_attempt_at=now + timedelta(seconds=30)))
        s.add(DeliveryRow(id=uuid.uuid4(), channel_id=2, channel_name="ops-slack", fingerprint="fp-pay",
                          event="firing", status="delivered", attempts=1, last_error=None,
                          payload={"status": "firing"}, created_at=now - timedelta(seconds=59),
                          delivered_at=now - timedelta(seconds=58)))
        for table_name in ("alert_rules", "alert_channels"):  # ids given above: new rows take the next ones
            s.execute(text(f"SELECT setval(pg_get_serial_sequence('{table_name}', 'id'), 10)"))
    return open_id


def table(at: AppTest, column: str) -> pd.DataFrame:
    """The frame of the one st.dataframe with this column (a dataframe has no key to find it by)."""
    (frame,) = [d.value for d in at.dataframe if column in d.value.columns]
    return frame


def drawn(at: AppTest) -> str:
    """Everything the page sent to the browser, as text (every element's message, tables' bytes included)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


# -- alerts ------------------------------------------------------------------------------------------


def test_alerts_page_shows_firing_and_pending_alerts_with_their_figures(dash_env):
    seed_alerting(dash_env, datetime.now(UTC))
    at = open_page("pages/alerts.py")
    assert not at.exception
    assert texts(at.title) == ["Alerts"]
    m = metrics(at)
    assert (m["Firing"], m["Pending"], m["Silenced"], m["Rules"]) == ("1", "1", "1", "3")
    frame = table(at, "value vs threshold")
    assert frame["service"].tolist() == ["payments", "orders"]  # firing first; the resolved one is not shown
    assert frame["state"].tolist() == ["🔴 firing", "🟠 pending"]
    assert frame["rule"].tolist() == ["errors-high", "p95-slow"]
    assert frame["kind"].tolist() == ["Error rate", "Latency p95"]
    assert frame["value vs threshold"].tolist() == ["12.5 % > 5 %", "310 ms > 250 ms"]
    assert frame["silenced"].tolist() == [False, True]


def test_alerts_page_lists_rules_with_units_and_channel_names(dash_env):
    seed_alerting(dash_env, datetime.now(UTC))
    at = open_page("pages/alerts.py")
    rules = table(at, "repeat")
    assert rules["name"].tolist() == ["db-gone", "errors-high", "p95-slow"]
    assert rules["service"].tolist() == ["(the monitor)", "every service", "orders"]
    assert rules["threshold"].tolist() == ["—", "5 %", "250 ms"]
    assert rules["window"].tolist() == ["—", "300 s", "120 s"]
    assert rules["channels"].tolist() == ["ops-slack", "ops-hook, ops-slack", "none"]
    assert rules["repeat"].tolist() == ["never", "600 s", "never"]
    silences = table(at, "comment")
    assert silences["state"].tolist() == ["🔵 active", "⚪ expired"]
    assert silences["rule"].tolist() == ["p95-slow", "any"]
    assert silences["comment"].tolist() == ["deploying orders", "old maintenance"]


def test_alerts_page_without_alerts_says_so(dash_env):
    at = open_page("pages/alerts.py")
    assert not at.exception
    assert metrics(at)["Firing"] == "0"
    assert "No alert is firing or pending." in texts(at.success)
    assert any("No alert rule yet" in i for i in texts(at.info))


def test_a_viewer_sees_the_forms_disabled(dash_env):
    seed_alerting(dash_env, datetime.now(UTC))
    at = open_page("pages/alerts.py", Role.VIEWER)
    assert at.button(key="rule-new-submit").disabled
    assert at.button(key="silence-expire").disabled


def test_the_rule_form_follows_the_kind(dash_env):
    at = open_page("pages/alerts.py")
    at.selectbox(key="rule-new-kind").set_value("latency-p95").run()
    threshold = at.number_input(key="rule-new-threshold-latency-p95")
    assert threshold.label == "Threshold (ms)" and threshold.value == 500.0 and not threshold.disabled
    window = at.number_input(key="rule-new-window-3600")
    assert not window.disabled and window.max == 3600  # the engine keeps an hour of routed traffic
    at.selectbox(key="rule-new-kind").set_value("service-down").run()
    assert at.number_input(key="rule-new-threshold-service-down").disabled
    assert at.number_input(key="rule-new-window-86400").disabled
    at.selectbox(key="rule-new-kind").set_value("monitor-database").run()
    assert at.selectbox(key="rule-new-service").disabled


# -- incidents ---------------------------------------------------------------------------------------


def test_incidents_page_lists_incidents_newest_first_with_their_notes(dash_env):
    seed_alerting(dash_env, datetime.now(UTC))
    at = open_page("pages/incidents.py")
    assert not at.exception
    m = metrics(at)
    assert (m["Open"], m["Open, not acknowledged"]) == ("1", "1")
    frame = table(at, "latest note")
    assert frame["service"].tolist() == ["payments", "orders"]
    assert frame["status"].tolist() == ["🔴 open", "🟢 resolved"]
    assert frame["latest note"].tolist() == ["rolling back payments", ""]
    assert frame["expected"].tolist() == ["", "🧪 expected"]
    assert frame["duration"].iloc[1] == "20 min"  # resolved 20 minutes after it started
    assert frame["duration"].iloc[0].endswith("so far")
    assert frame["acknowledged"].tolist()[0] == "no" and frame["acknowledged"].iloc[1].endswith("by ops")
    # the API is not running here: the parts it serves say so, the rest of the page is drawn
    assert any("not reachable" in e for e in texts(at.error))


def test_incidents_page_filters_by_status(dash_env):
    seed_alerting(dash_env, datetime.now(UTC))
    at = open_page("pages/incidents.py")
    at.selectbox(key="inc-status").set_value("resolved").run()
    assert table(at, "latest note")["service"].tolist() == ["orders"]
    assert metrics(at)["Open"] == "0"


# -- notifications -----------------------------------------------------------------------------------


def test_notifications_page_shows_the_delivery_log(dash_env):
    seed_alerting(dash_env, datetime.now(UTC))
    at = open_page("pages/notifications.py")
    assert not at.exception
    m = metrics(at)
    assert (m["Delivered, 24 h"], m["Waiting"], m["Failed, 24 h"]) == ("1", "1", "0")
    log = table(at, "attempts")
    assert log["channel"].tolist() == ["ops-slack", "ops-hook"]  # newest first
    assert log["status"].tolist() == ["🟢 delivered", "🟠 retrying"]
    assert log["attempts"].tolist() == [1, 2]
    assert log["last error"].tolist() == ["", "connection refused"]
    at.multiselect(key="dl-status").set_value([DeliveryStatus.RETRYING]).run()
    assert table(at, "attempts")["channel"].tolist() == ["ops-hook"]
    at.multiselect(key="dl-status").set_value([]).run()
    at.selectbox(key="dl-channel").set_value(2).run()
    assert table(at, "attempts")["channel"].tolist() == ["ops-slack"]


def test_notifications_page_never_reads_a_secret_from_the_database(dash_env):
    seed_alerting(dash_env, datetime.now(UTC))
    at = open_page("pages/notifications.py")
    assert not at.exception
    shown = drawn(at)
    assert "ops-hook" in shown and "ops-slack" in shown  # the channel names are drawn (the log's filter)
    assert "sEcReTtOkEn" not in shown and WEBHOOK_SECRET not in shown


def test_an_incidents_timeline_has_its_events_and_acknowledge_adds_the_note(live_api, dash_env):
    now = datetime.now(UTC)
    open_id = seed_alerting(dash_env, now)
    with dash_env.begin() as s:
        s.add(AlertEventRow(fingerprint="fp-pay", rule_id=1, rule_name="errors-high", service_name="payments",
                            state="pending", silenced=False, value=7.0, at=now - timedelta(seconds=170),
                            incident_id=None))
        s.add(AlertEventRow(fingerprint="fp-pay", rule_id=1, rule_name="errors-high", service_name="payments",
                            state="firing", silenced=False, value=12.5, at=now - timedelta(seconds=110),
                            incident_id=open_id))
        s.add(Simulation(kind="service-failure", target="payments", params={"duration": 60_000}, status="completed",
                         started_at=now - timedelta(seconds=200), ends_at=now - timedelta(seconds=140),
                         ended_at=now - timedelta(seconds=140)))
    at = open_page("pages/incidents.py")
    assert not at.exception, at.exception
    assert at.selectbox(key="inc-pick").value == str(open_id)  # the newest is shown first
    traces = {(t["type"], t["name"]): t for t in chart_spec(at, "incident-timeline")["data"]}
    assert set(traces) == {("scatter", "alert"), ("bar", "simulation"), ("scatter", "notification"),
                           ("scatter", "note")}
    assert traces["scatter", "alert"]["text"] == ["errors-high pending", "errors-high firing"]
    assert plotly_array(traces["bar", "simulation"]["x"]) == [60_000.0]
    assert traces["scatter", "note"]["text"] == ["note by ops: first look", "note by ops: rolling back payments"]
    events = table(at, "detail")
    # oldest first: the failure, the alert pending and firing, then (at -60 s, -59 s, -30 s) its notifications and notes
    assert events["kind"].tolist() == ["simulation", "alert", "alert", "notification", "note", "notification",
                                       "note"]
    at.text_area(key=f"ack-note-{open_id}").input("on it: <b>rolling back</b>")
    at.button(key=f"ack-submit-{open_id}").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert texts(at.success) == ["Incident errors-high on payments: acknowledged."]
    with dash_env() as s:
        row = s.get(IncidentRow, open_id)
        assert row is not None and row.acknowledged_by == "test-operator"
        notes = s.scalars(select(IncidentNoteRow.note).where(IncidentNoteRow.incident_id == open_id)
                          .order_by(IncidentNoteRow.at)).all()
        assert notes[-1] == "on it: <b>rolling back</b>"
    assert at.text_area(key=f"ack-note-{open_id}").value == ""  # cleared after success
    assert table(at, "latest note")["latest note"].iloc[0] == "on it: <b>rolling back</b>"
    assert at.button(key=f"ack-submit-{open_id}").label == "Add note"


def test_channels_are_listed_masked_and_their_secrets_never_drawn(live_api, dash_env):
    seed_alerting(dash_env, datetime.now(UTC))
    at = open_page("pages/notifications.py", Role.ADMIN)
    assert not at.exception and not at.error, texts(at.error)
    channels = table(at, "config")
    assert channels["name"].tolist() == ["ops-hook", "ops-slack"]
    assert channels["config"].iloc[0].startswith("url: http://127.0.0.1:9/hook · secret: ********")
    shown = drawn(at)
    assert "sEcReTtOkEn" not in shown and WEBHOOK_SECRET not in shown
    # the edit form of the slack channel: its URL is the secret, so the input is empty and of type password
    at.selectbox(key="ch-edit-pick").set_value(2).run()
    url = at.text_input(key="ch-edit-2-url")
    assert url.value == "" and url.proto.type == url.proto.PASSWORD
    assert "sEcReTtOkEn" not in drawn(at)


def test_a_channel_made_in_the_form_keeps_its_secret_and_a_test_says_what_happened(live_api, dash_env):
    with hook() as receiver:
        at = open_page("pages/notifications.py", Role.ADMIN)
        at.text_input(key="ch-new-webhook-name").input("receiver")
        at.text_input(key="ch-new-webhook-url").input(receiver.url())
        at.text_input(key="ch-new-webhook-secret").input(WEBHOOK_SECRET)
        at.button(key="ch-new-webhook-submit").click().run()
        assert not at.error, texts(at.error)
        assert texts(at.success) == ["Channel receiver (webhook) created."]
        assert at.text_input(key="ch-new-webhook-secret").value == ""  # cleared after success
        with dash_env() as s:
            row = s.scalars(select(AlertChannelRow)).one()
            assert row.config == {"url": receiver.url(), "secret": WEBHOOK_SECRET}
        assert WEBHOOK_SECRET not in drawn(at)
        at.selectbox(key="ch-test-pick").set_value(row.id).run()
        at.button(key="ch-test").click().run()
        assert texts(at.success) == ["Test delivered to receiver after 1 attempt(s)."], texts(at.error)
        assert receiver.count() == 1


def test_a_wrong_channel_field_is_named_as_the_form_names_it_and_kept(live_api, dash_env):
    at = open_page("pages/notifications.py", Role.ADMIN)
    at.text_input(key="ch-new-webhook-name").input("bad")
    at.text_input(key="ch-new-webhook-url").input("ftp://nowhere")
    at.button(key="ch-new-webhook-submit").click().run()
    (error,) = texts(at.error)
    assert "URL (config.url)" in error
    assert at.text_input(key="ch-new-webhook-url").value == "ftp://nowhere"  # kept to correct
    with dash_env() as s:
        assert s.scalars(select(AlertChannelRow)).all() == []


def test_an_operator_lists_channels_but_cannot_change_them_and_a_viewer_is_told_why(live_api, dash_env):
    seed_alerting(dash_env, datetime.now(UTC))
    at = open_page("pages/notifications.py", Role.OPERATOR)
    assert table(at, "config")["name"].tolist() == ["ops-hook", "ops-slack"]
    assert at.button(key="ch-new-webhook-submit").disabled and at.button(key="ch-test").disabled
    viewer = open_page("pages/notifications.py", Role.VIEWER)
    assert not viewer.error
    assert any("needs the operator role" in i for i in texts(viewer.info))
    assert table(viewer, "attempts")["channel"].tolist() == ["ops-slack", "ops-hook"]  # the log is for everyone


def test_a_rule_made_edited_and_deleted_through_the_forms(live_api, dash_env):
    seed_alerting(dash_env, datetime.now(UTC))
    at = open_page("pages/alerts.py")
    at.selectbox(key="rule-new-kind").set_value("error-rate").run()
    at.text_input(key="rule-new-name").input("orders-errors")
    at.selectbox(key="rule-new-service").set_value("orders")
    at.number_input(key="rule-new-threshold-error-rate").set_value(2.5)
    at.number_input(key="rule-new-window-3600").set_value(60)
    at.number_input(key="rule-new-for").set_value(30)
    at.radio(key="rule-new-severity").set_value("critical")
    at.multiselect(key="rule-new-channels").set_value([1])
    at.button(key="rule-new-submit").click().run()
    assert not at.error, texts(at.error)
    assert texts(at.success) == ["Rule orders-errors created."]
    assert at.text_input(key="rule-new-name").value == ""  # cleared after success
    with dash_env() as s:
        row = s.scalars(select(AlertRuleRow).where(AlertRuleRow.name == "orders-errors")).one()
        assert (row.kind, row.service_name, row.threshold, row.window_seconds, row.for_seconds, row.severity,
                row.channels, row.repeat_seconds) == ("error-rate", "orders", 2.5, 60, 30, "critical", [1], None)
    assert "orders-errors" in table(at, "repeat")["name"].tolist()
    at.selectbox(key="rule-edit-pick").set_value(row.id).run()
    at.number_input(key=f"rule-edit-{row.id}-threshold-error-rate").set_value(4.0)
    at.button(key=f"rule-edit-{row.id}-submit").click().run()
    assert texts(at.success) == ["Rule orders-errors saved."], texts(at.error)
    at.selectbox(key="rule-delete-pick").set_value(row.id)
    at.button(key="rule-delete-submit").click().run()
    assert texts(at.warning) == ["Tick the confirmation box to delete the rule."]
    with dash_env() as s:
        assert s.get(AlertRuleRow, row.id).threshold == 4.0  # type: ignore[union-attr]
    at.selectbox(key="rule-delete-pick").set_value(row.id)
    at.checkbox(key="rule-delete-confirm").check()
    at.button(key="rule-delete-submit").click().run()
    assert texts(at.success) == ["Rule orders-errors deleted."], texts(at.error)
    with dash_env() as s:
        assert s.get(AlertRuleRow, row.id) is None


def test_a_wrong_rule_field_is_named_as_the_form_names_it_and_the_form_kept(live_api, dash_env):
    at = open_page("pages/alerts.py")
    at.selectbox(key="rule-new-kind").set_value("error-rate").run()
    at.text_input(key="rule-new-name").input("too-high")
    at.number_input(key="rule-new-threshold-error-rate").set_value(150.0)
    at.button(key="rule-new-submit").click().run()
    (error,) = texts(at.error)
    assert "Threshold (threshold)" in error and "100" in error
    assert at.text_input(key="rule-new-name").value == "too-high"
    assert at.number_input(key="rule-new-threshold-error-rate").value == 150.0
    with dash_env() as s:
        assert s.scalars(select(AlertRuleRow)).all() == []


def test_a_silence_made_in_the_form_then_expired(live_api, dash_env):
    seed_alerting(dash_env, datetime.now(UTC))
    at = open_page("pages/alerts.py")
    at.selectbox(key="silence-service").set_value("payments")
    at.number_input(key="silence-minutes").set_value(30)
    at.text_input(key="silence-comment").input("deploying payments")
    at.button(key="silence-submit").click().run()
    assert not at.error, texts(at.error)
    (message,) = texts(at.success)
    assert message.endswith(", active.")
    with dash_env() as s:
        row = s.scalars(select(SilenceRow).where(SilenceRow.comment == "deploying payments")).one()
        assert row.service_name == "payments" and row.rule_id is None and row.created_by == "test-operator"
        assert timedelta(minutes=29) < row.ends_at - row.starts_at <= timedelta(minutes=30)
    assert at.text_input(key="silence-comment").value == ""
    silences = table(at, "comment")
    assert silences["state"].tolist()[:2] == ["🔵 active", "🔵 active"]
    at.selectbox(key="silence-expire-pick").set_value(row.id).run()
    at.button(key="silence-expire").click().run()
    assert texts(at.success) == [f"Silence #{row.id} expired."], texts(at.error)
    states = dict(zip(table(at, "comment")["comment"], table(at, "comment")["state"], strict=True))
    assert states["deploying payments"] == "⚪ expired"
