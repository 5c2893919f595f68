"""The notifier against real receivers on loopback: webhook (signed, Alertmanager's shape), Slack, SMTP (aiosmtpd),
Apprise; retries with backoff, a dead channel beside a live one, bounds, stop and resume, a database outage."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from contract.alerting import AlertKind, AlertState, Severity
from contract.notifications import DeliveryEvent, DeliveryStatus
from db import channels as queries
from db.alerting_models import DeliveryRow
from db.session import make_engine
from engine.alerting.delivery import NotifyPolicy
from engine.alerting.model import AlertSnapshot, Notice
from engine.alerting.notifier import ChannelNotifier
from engine.alerting.render import NOT_ENDED
from engine.clock import SystemClock
from engine.hosting import EngineLoop
from engine.store.writer import BatchWriter
from tests.conftest import wait_for
from tests.engine.receivers import hook, silent_address, smtp_server

PUBLIC = "http://monitor.test:5000"
FAST: dict[str, Any] = {"timeout": 2.0, "backoff": 0.05, "backoff_max": 1.0, "max_attempts": 6, "queue": 50}


def snapshot(state: AlertState = AlertState.FIRING, *, service: str | None = "orders",
             incident: uuid.UUID | None = None, value: float | None = 0.0) -> AlertSnapshot:
    """An alert of rule 7 (orders-down, critical) at a fixed time."""
    at = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    resolved = state is AlertState.RESOLVED
    return AlertSnapshot(
        fingerprint="0123456789abcdef", rule_id=7, rule_name="orders-down", kind=AlertKind.SERVICE_DOWN,
        severity=Severity.CRITICAL, service=service, state=state, silenced=False, expected=False, value=value,
        threshold=None, summary="no instance of orders serves", active_at=at - timedelta(seconds=5),
        fired_at=at, resolved_at=at + timedelta(minutes=3) if resolved else None, last_notified_at=None,
        incident_id=incident, at=at + timedelta(minutes=3) if resolved else at, changed=True)


@dataclass
class Running:
    """A started notifier on its own loop, with a writer over the test database."""

    notifier: ChannelNotifier
    writer: BatchWriter
    loop: EngineLoop
    sessions: sessionmaker[Session]

    def channel(self, name: str, kind: str, config: dict[str, Any]) -> int:
        """Store a channel and have the notifier load it (as the API does)."""
        with self.sessions.begin() as session:
            channel_id = queries.add_channel(session, name, kind, config).id
        with self.sessions() as session:
            self.notifier.load(session)
        return channel_id

    def notify(self, notice: Notice) -> float:
        """Hand the notice over on the engine loop, as the evaluator does; seconds the call took there."""
        async def call() -> float:
            began = time.perf_counter()
            self.notifier.notify(notice)
            return time.perf_counter() - began

        return self.loop.run_soon(call()).result(5)

    def rows(self, channel_id: int) -> list[DeliveryRow]:
        """The channel's delivery rows, newest first (after the writer's buffer is written)."""
        self.writer.flush()
        with self.sessions() as session:
            return queries.deliveries(session, channel_id)

    def settled(self, channel_id: int, status: DeliveryStatus, timeout: float = 10.0) -> DeliveryRow:
        """The channel's newest delivery once it has the status."""
        rows = wait_for(lambda: [r for r in self.rows(channel_id) if r.status == status.value], timeout)
        assert rows, (status, [(r.status, r.attempts, r.last_error) for r in self.rows(channel_id)])
        return rows[0]


@contextmanager
def running(sessions: sessionmaker[Session], **policy: Any) -> Iterator[Running]:
    """A notifier started on a loop of its own; stopped (and its rows written) after."""
    clock = SystemClock()
    writer = BatchWriter(sessions, clock, flush_interval=0.05)
    writer.start()
    notifier = ChannelNotifier(writer, clock, NotifyPolicy(**(FAST | policy)), PUBLIC)
    loop = EngineLoop("test-notify")
    loop.start()
    with sessions() as session:
        notifier.load(session)
    loop.run_soon(notifier.start()).result(5)
    try:
        yield Running(notifier, writer, loop, sessions)
    finally:
        loop.run_soon(notifier.stop()).result(10)
        loop.stop()
        writer.stop()


def test_webhook_sends_alertmanagers_shape_signed_over_the_raw_body(sessions):
    incident = uuid.uuid4()
    with hook() as receiver, running(sessions) as rt:
        cid = rt.channel("ops-hook", "webhook", {"url": receiver.url(), "secret": "s3cret-key"})
        took = rt.notify(Notice(snapshot(incident=incident), DeliveryEvent.FIRING, (cid,)))
        row = rt.settled(cid, DeliveryStatus.DELIVERED)
    assert took < 0.05  # the evaluator's call only queues
    [request] = receiver.received
    expected = "sha256=" + hmac.new(b"s3cret-key", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Signature"] == expected
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.body)
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "ops-hook"
    assert body["groupKey"] == '{}:{alertname="orders-down", service="orders"}'
    assert body["groupLabels"] == {"alertname": "orders-down", "service": "orders"}
    assert body["externalURL"] == PUBLIC
    assert body["incidentURL"] == f"{PUBLIC}/api/incidents/{incident}"
    [alert] = body["alerts"]
    assert alert["labels"] == {"alertname": "orders-down", "service": "orders", "severity": "critical",
                               "kind": "service-down", "fingerprint": "0123456789abcdef"}
    assert alert["annotations"] == {"summary": "no instance of orders serves", "value": "0", "threshold": "n/a",
                                    "incident": f"{PUBLIC}/api/incidents/{incident}"}
    assert (alert["startsAt"], alert["endsAt"]) == ("2026-03-01T12:00:05Z", NOT_ENDED)
    assert alert["generatorURL"] == f"{PUBLIC}/api/alert-rules/7" and alert["fingerprint"] == "0123456789abcdef"
    assert body["commonLabels"] == alert["labels"] and body["commonAnnotations"] == alert["annotations"]
    # the row holds exactly what was sent, and no secret
    assert (row.attempts, row.event, row.fingerprint, row.last_error) == (1, "firing", "0123456789abcdef", None)
    assert row.payload == body and "s3cret-key" not in json.dumps(row.payload)
    assert row.delivered_at is not None and row.channel_name == "ops-hook"


def test_a_resolved_alert_says_resolved_with_its_end_and_no_incident_link(sessions):
    with hook() as receiver, running(sessions) as rt:
        cid = rt.channel("plain-hook", "webhook", {"url": receiver.url()})
        rt.notify(Notice(snapshot(AlertState.RESOLVED), DeliveryEvent.RESOLVED, (cid,)))
        rt.settled(cid, DeliveryStatus.DELIVERED)
    [request] = receiver.received
    body = json.loads(request.body)
    assert "X-Signature" not in request.headers  # no secret, no signature
    assert body["status"] == "resolved" and body["alerts"][0]["status"] == "resolved"
    assert body["alerts"][0]["endsAt"] == "2026-03-01T12:03:05Z"
    assert "incidentURL" not in body and "incident" not in body["alerts"][0]["annotations"]


def test_three_500s_then_200_is_delivered_on_the_fourth_attempt_with_backoff(sessions):
    with hook((500, 500, 500, 200)) as receiver, running(sessions) as rt:
        cid = rt.channel("flaky", "webhook", {"url": receiver.url()})
        rt.notify(Notice(snapshot(), DeliveryEvent.FIRING, (cid,)))
        row = rt.settled(cid, DeliveryStatus.DELIVERED)
    assert receiver.count() == 4
    assert (row.attempts, row.status) == (4, "delivered")
    assert row.last_error == "HTTP 500: receiver says no"  # the latest failure stays on the row
    gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
    # waits of 0.05, 0.1 and 0.2 s: each at least its backoff, each longer than the one before
    assert [round(g, 2) >= d for g, d in zip(gaps, (0.05, 0.1, 0.2), strict=True)] == [True] * 3
    assert gaps[0] < gaps[1] < gaps[2]
    assert [json.loads(r.body) for r in receiver.received[1:]] == [json.loads(receiver.received[0].body)] * 3


def test_a_delivery_fails_after_the_last_attempt(sessions):
    with hook((503,)) as receiver, running(sessions, max_attempts=3) as rt:
        cid = rt.channel("down-hook", "webhook", {"url": receiver.url()})
        rt.notify(Notice(snapshot(), DeliveryEvent.REPEAT, (cid,)))
        row = rt.settled(cid, DeliveryStatus.FAILED)
        stats = rt.notifier.stats()[cid]
    assert receiver.count() == 3
    assert (row.attempts, row.event, row.next_attempt_at) == (3, "repeat", None)
    assert row.last_error == "HTTP 503: receiver says no"
    assert (stats.failed, stats.delivered, stats.waiting, stats.sending) == (1, 0, 0, 0)


def test_a_channel_that_never_answers_delays_another_by_less_than_a_second(sessions):
    with silent_address() as dead_port, hook() as receiver, running(sessions, timeout=2.0) as rt:
        dead = rt.channel("black-hole", "webhook", {"url": f"http://127.0.0.1:{dead_port}/hook"})
        live = rt.channel("live", "webhook", {"url": receiver.url()})
        rt.notify(Notice(snapshot(), DeliveryEvent.FIRING, (dead,)))
        time.sleep(0.2)  # the dead channel's attempt is in flight, waiting for an answer
        began = time.monotonic()
        rt.notify(Notice(snapshot(), DeliveryEvent.FIRING, (dead, live)))
        assert wait_for(lambda: receiver.count() == 1, 5)
        delay = receiver.received[0].at - began
        loop_began = time.perf_counter()

        async def noop() -> None:
            return None

        rt.loop.run_soon(noop()).result(1)
        loop_delay = time.perf_counter() - loop_began
        assert (rt.notifier.stats()[dead].sending, rt.notifier.stats()[dead].waiting) == (1, 1)
        timed_out = rt.settled(dead, DeliveryStatus.RETRYING, timeout=5)
    print(f"live channel delivered {delay * 1000:.0f} ms after the notice; the loop answered in "
          f"{loop_delay * 1000:.1f} ms while the dead channel's attempt hung")
    assert delay < 1.0
    assert loop_delay < 0.1
    assert timed_out.last_error == "timed out after 2 s"


def test_email_is_multipart_with_the_service_and_state_in_the_subject(sessions):
    with smtp_server() as smtp, running(sessions) as rt:
        cid = rt.channel("oncall-mail", "email", {"host": "127.0.0.1", "port": smtp.port, "starttls": False,
                                                  "from": "monitor@example.test",
                                                  "to": ["a@example.test", "b@example.test"]})
        rt.notify(Notice(snapshot(incident=uuid.uuid4()), DeliveryEvent.FIRING, (cid,)))
        row = rt.settled(cid, DeliveryStatus.DELIVERED)
    [mail] = smtp.mails
    assert mail.sender == "monitor@example.test" and mail.recipients == ["a@example.test", "b@example.test"]
    assert mail.message["Subject"] == "[FIRING] orders: orders-down (critical)"
    assert mail.message.get_content_type() == "multipart/alternative"
    plain_part, html_part = mail.message.get_body(("plain",)), mail.message.get_body(("html",))
    assert plain_part is not None and html_part is not None
    text, html = plain_part.get_content(), html_part.get_content()
    assert "no instance of orders serves" in text and "/api/incidents/" in text
    assert "<td>orders</td>" in html and "<td>firing</td>" in html and "no instance of orders serves" in html
    assert row.payload["subject"] == mail.message["Subject"] and mail.login is None


def test_email_logs_in_when_a_username_is_set(sessions):
    with smtp_server(user=("monitor", "mail-pass-123")) as smtp, running(sessions) as rt:
        cid = rt.channel("auth-mail", "email", {"host": "127.0.0.1", "port": smtp.port, "starttls": False,
                                                "username": "monitor", "password": "mail-pass-123",
                                                "from": "monitor@example.test", "to": ["a@example.test"]})
        rt.notify(Notice(snapshot(AlertState.RESOLVED), DeliveryEvent.RESOLVED, (cid,)))
        row = rt.settled(cid, DeliveryStatus.DELIVERED)
    assert smtp.logins == [("monitor", "mail-pass-123")]
    assert smtp.mails[0].message["Subject"] == "[RESOLVED] orders: orders-down (critical)"
    assert "mail-pass-123" not in json.dumps(row.payload)


def test_email_with_starttls_fails_against_a_server_without_it(sessions):
    with smtp_server() as smtp, running(sessions, max_attempts=1) as rt:
        cid = rt.channel("tls-mail", "email", {"host": "127.0.0.1", "port": smtp.port, "starttls": True,
                                               "from": "monitor@example.test", "to": ["a@example.test"]})
        rt.notify(Notice(snapshot(), DeliveryEvent.FIRING, (cid,)))
        row = rt.settled(cid, DeliveryStatus.FAILED)
    assert smtp.mails == []  # never sent in clear text when TLS was asked for
    assert "STARTTLS" in (row.last_error or "")


def test_slack_gets_text_and_blocks(sessions):
    with hook() as receiver, running(sessions) as rt:
        cid = rt.channel("slack", "slack", {"url": receiver.url("/services/T0/B0/xoxb-token")})
        rt.notify(Notice(snapshot(service=None), DeliveryEvent.FIRING, (cid,)))
        rt.settled(cid, DeliveryStatus.DELIVERED)
    [request] = receiver.received
    body = json.loads(request.body)
    assert request.path == "/services/T0/B0/xoxb-token"
    assert set(body) == {"text", "blocks"}
    assert body["text"] == "[FIRING] monitor: orders-down (critical): no instance of orders serves"
    assert body["blocks"][0]["text"]["text"].startswith("*[FIRING] monitor: orders-down (critical)*")
    assert f"<{PUBLIC}/api/alert-rules/7|rule>" in body["blocks"][1]["elements"][1]["text"]


def test_apprise_delivers_to_a_json_url(sessions):
    # a timeout no busy machine reaches: a request Apprise gave up on is sent again (at least once), and this test
    # counts exactly one
    with hook() as receiver, running(sessions, timeout=15.0) as rt:
        port = receiver.port
        cid = rt.channel("apprise", "apprise", {"url": f"json://127.0.0.1:{port}/apprise-hook"})
        rt.notify(Notice(snapshot(), DeliveryEvent.FIRING, (cid,)))
        row = rt.settled(cid, DeliveryStatus.DELIVERED)
    [request] = receiver.received
    body = json.loads(request.body)
    assert request.path.startswith("/apprise-hook")
    assert body["title"] == "[FIRING] orders: orders-down (critical)" and body["type"] == "failure"
    assert "no instance of orders serves" in body["message"]
    assert row.payload == {"title": body["title"], "body": body["message"], "type": "failure"}


def test_apprise_failure_is_recorded_without_the_url(sessions):
    with hook((500,)) as receiver, running(sessions, max_attempts=1) as rt:
        cid = rt.channel("apprise-bad", "apprise", {"url": f"json://127.0.0.1:{receiver.port}/tok3n-path"})
        rt.notify(Notice(snapshot(), DeliveryEvent.FIRING, (cid,)))
        row = rt.settled(cid, DeliveryStatus.FAILED)
    assert row.last_error and row.last_error.startswith("Apprise")
    assert "tok3n-path" not in row.last_error


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://[::ffff:169.254.169.254]/x",
                                 "http://metadata.google.internal/computeMetadata/v1"],
                         ids=["metadata-v4", "v4-mapped", "metadata-name"])
def test_a_metadata_address_is_refused_at_connect_time(sessions, url):
    # stored past the API (which refuses it): the notifier checks again before dialling, and dials nothing
    with running(sessions, max_attempts=1) as rt:
        cid = rt.channel("sneaky", "webhook", {"url": url})
        rt.notify(Notice(snapshot(), DeliveryEvent.FIRING, (cid,)))
        row = rt.settled(cid, DeliveryStatus.FAILED)
    assert "metadata" in (row.last_error or "")


def test_a_deleted_channels_waiting_delivery_fails_and_its_lane_ends(sessions):
    with hook((500,)) as receiver, running(sessions, backoff=0.3) as rt:
        cid = rt.channel("short-lived", "webhook", {"url": receiver.url()})
        rt.notify(Notice(snapshot(), DeliveryEvent.FIRING, (cid,)))
        rt.settled(cid, DeliveryStatus.RETRYING)
        with sessions.begin() as session:
            queries.delete_channel(session, cid)
        with sessions() as session:
            rt.notifier.load(session)
        assert wait_for(lambda: cid not in rt.notifier.stats(), 3)
        rt.writer.flush()
        with rt.sessions() as session:
            [row] = queries.deliveries(session)
    assert receiver.count() == 1  # the second attempt found no channel and sent nothing
    assert (row.status, row.attempts, row.last_error, row.channel_id) == ("failed", 2, "channel deleted", None)


def test_an_unknown_channel_fails_at_once(sessions):
    with running(sessions) as rt:
        rt.notify(Notice(snapshot(), DeliveryEvent.FIRING, (99,)))
        rt.writer.flush()
        with rt.sessions() as session:
            [row] = queries.deliveries(session)
    assert (row.status, row.channel_id, row.channel_name, row.last_error) == ("failed", None, "#99", "no channel 99")


def test_a_full_lane_drops_its_oldest_waiting_delivery_and_counts_it(sessions):
    with silent_address() as dead_port, running(sessions, queue=2, timeout=5.0) as rt:
        cid = rt.channel("slow", "webhook", {"url": f"http://127.0.0.1:{dead_port}/"})
        for n in range(4):
            rt.notify(Notice(replace(snapshot(), value=float(n)), DeliveryEvent.FIRING, (cid,)))
            if n == 0:  # the first is taken out of the lane and sent (and hangs)
                assert wait_for(lambda: rt.notifier.stats()[cid].sending == 1, 2)
        stats = rt.notifier.stats()[cid]
        dropped = rt.settled(cid, DeliveryStatus.FAILED)
    assert (stats.dropped, stats.sending, stats.waiting) == (1, 1, 2)
    assert dropped.payload["alerts"][0]["annotations"]["value"] == "1"  # the oldest waiting, not the one in flight
    assert (dropped.last_error or "").startswith("dropped: 2 notifications were waiting")


def test_stop_records_the_attempt_in_flight_and_the_next_start_resumes_it(sessions):
    with silent_address() as dead_port, running(sessions, timeout=10.0) as rt:
        cid = rt.channel("moving", "webhook", {"url": f"http://127.0.0.1:{dead_port}/"})
        rt.notify(Notice(snapshot(), DeliveryEvent.FIRING, (cid,)))
        assert wait_for(lambda: rt.notifier.stats()[cid].sending == 1, 2)
    with sessions() as session:
        [stopped] = queries.deliveries(session, cid)
    assert (stopped.status, stopped.attempts, stopped.last_error) == ("retrying", 1, "engine stopped during attempt 1")
    with hook() as receiver:
        with sessions.begin() as session:
            queries.get_channel(session, cid).config = {"url": receiver.url()}  # type: ignore[union-attr]
        with running(sessions) as rt:
            with sessions.begin() as session:
                assert rt.notifier.resume(session) == (1, 0)
            row = rt.settled(cid, DeliveryStatus.DELIVERED)
    assert (row.id, row.attempts, receiver.count()) == (stopped.id, 2, 1)


def test_resume_fails_what_is_older_than_the_retry_horizon(sessions):
    horizon = NotifyPolicy(**FAST).horizon_s
    with running(sessions) as rt:
        cid = rt.channel("old", "webhook", {"url": "http://127.0.0.1:9/"})
        with sessions.begin() as session:
            session.add(DeliveryRow(
                id=uuid.uuid4(), channel_id=cid, channel_name="old", fingerprint="f", event="firing", status="retrying",
                attempts=2, last_error="HTTP 500", payload={},
                created_at=datetime.now(UTC) - timedelta(seconds=horizon + 5)))
        with sessions.begin() as session:
            assert rt.notifier.resume(session) == (0, 1)
        [row] = rt.rows(cid)
    assert row.status == "failed" and (row.last_error or "").startswith("not resumed: older than the retry horizon")


@pytest.fixture
def dead_db() -> Iterator[Engine]:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/gone", connect_args={"connect_timeout": 1})
    yield engine
    engine.dispose()


def test_notifications_go_out_during_a_database_outage_and_are_recorded_after(sessions, dead_db):
    live = sessions.kw["bind"]
    with hook() as receiver, running(sessions) as rt:
        cid = rt.channel("outage-hook", "webhook", {"url": receiver.url()})
        sessions.configure(bind=dead_db)
        rt.notify(Notice(snapshot(), DeliveryEvent.FIRING, (cid,)))
        assert wait_for(lambda: receiver.count() == 1, 5)
        assert wait_for(lambda: not rt.writer.status().database_ok, 5)
        sessions.configure(bind=live)
        row = rt.settled(cid, DeliveryStatus.DELIVERED)
    assert row.attempts == 1 and row.payload == json.loads(receiver.received[0].body)
