"""Incidents from alert changes against a real PostgreSQL: open on a critical alert firing, join, resolve, expected,
the state kept across a restart, and every change written through the batch writer (an outage included)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from contract.alerting import AlertKind, AlertState, Severity
from db.alerting_models import AlertRow, IncidentRow
from db.session import make_engine, make_session_factory
from engine.alerting.incidents import IncidentBook
from engine.alerting.model import AlertSnapshot, fingerprint
from engine.clock import FakeClock
from engine.store.writer import BatchWriter


def snapshot(clock: FakeClock, rule_id: int, service: str | None, state: AlertState, *,
             severity: Severity = Severity.CRITICAL, expected: bool = False) -> AlertSnapshot:
    """An alert of rule_id for service in state, taken now."""
    now = clock.now()
    return AlertSnapshot(
        fingerprint=fingerprint(rule_id, service), rule_id=rule_id, rule_name=f"rule-{rule_id}",
        kind=AlertKind.SERVICE_DOWN if service else AlertKind.MONITOR_DATABASE, severity=severity, service=service,
        state=state, silenced=expected, expected=expected, value=0.0, threshold=None,
        summary=f"{service or 'monitor'} is down", active_at=now - timedelta(seconds=30),
        fired_at=now if state is AlertState.FIRING else None,
        resolved_at=now if state is AlertState.RESOLVED else None, last_notified_at=None, incident_id=None,
        at=now, changed=True)


@pytest.fixture
def book(writer, clock):
    return IncidentBook(writer, clock)


def rows(sessions) -> list[IncidentRow]:
    with sessions() as s:
        return list(s.scalars(select(IncidentRow).order_by(IncidentRow.started_at)))


def test_a_pending_critical_alert_opens_nothing_and_firing_opens_one(book, writer, sessions, clock):
    assert book.on_alert(snapshot(clock, 1, "orders", AlertState.PENDING)) is None
    writer.flush()
    assert rows(sessions) == []
    clock.advance(30)
    opened_at = clock.now()
    incident = book.on_alert(snapshot(clock, 1, "orders", AlertState.FIRING))
    assert isinstance(incident, uuid.UUID)
    writer.flush()
    [row] = rows(sessions)
    assert (row.id, row.service_name, row.status, row.severity, row.started_at, row.resolved_at, row.expected) == (
        incident, "orders", "open", "critical", opened_at, None, False)
    assert row.fingerprints == [fingerprint(1, "orders")]
    assert row.title == "rule-1: orders is down"


def test_a_warning_opens_nothing_but_joins_an_open_incident(book, writer, sessions, clock):
    assert book.on_alert(snapshot(clock, 2, "orders", AlertState.FIRING, severity=Severity.WARNING)) is None
    assert book.on_alert(snapshot(clock, 5, "orders", AlertState.FIRING, severity=Severity.WARNING)) is None
    assert book.on_alert(snapshot(clock, 5, "orders", AlertState.RESOLVED, severity=Severity.WARNING)) is None
    writer.flush()
    assert rows(sessions) == []
    incident = book.on_alert(snapshot(clock, 1, "orders", AlertState.FIRING))  # 2 fires already: it joins at once
    assert book.on_alert(snapshot(clock, 3, "orders", AlertState.PENDING, severity=Severity.INFO)) is None
    assert book.on_alert(snapshot(clock, 3, "orders", AlertState.FIRING, severity=Severity.INFO)) == incident
    assert book.on_alert(snapshot(clock, 4, "payments", AlertState.FIRING, severity=Severity.WARNING)) is None
    writer.flush()
    [row] = rows(sessions)
    assert row.fingerprints == [fingerprint(1, "orders"), fingerprint(2, "orders"), fingerprint(3, "orders")]


def test_it_resolves_when_all_its_alerts_have_resolved(book, writer, sessions, clock):
    first = book.on_alert(snapshot(clock, 1, "orders", AlertState.FIRING))
    clock.advance(10)
    assert book.on_alert(snapshot(clock, 2, "orders", AlertState.FIRING, severity=Severity.WARNING)) == first
    clock.advance(10)
    assert book.on_alert(snapshot(clock, 1, "orders", AlertState.RESOLVED)) == first
    writer.flush()
    assert [r.status for r in rows(sessions)] == ["open"]
    clock.advance(5)
    assert book.on_alert(snapshot(clock, 1, "orders", AlertState.PENDING)) == first  # a member, not firing
    clock.advance(5)
    assert book.on_alert(snapshot(clock, 1, "orders", AlertState.FIRING)) == first  # fires again: still a member
    clock.advance(10)
    assert book.on_alert(snapshot(clock, 2, "orders", AlertState.RESOLVED, severity=Severity.WARNING)) == first
    assert book.open_incidents()[0].firing == {fingerprint(1, "orders")}
    clock.advance(10)
    resolved_at = clock.now()
    assert book.on_alert(snapshot(clock, 1, "orders", AlertState.RESOLVED)) == first
    assert book.open_incidents() == []
    writer.flush()
    [row] = rows(sessions)
    assert (row.status, row.resolved_at, row.started_at) == ("resolved", resolved_at, resolved_at - timedelta(
        seconds=50))
    # the next critical alert opens a new incident
    clock.advance(60)
    second = book.on_alert(snapshot(clock, 1, "orders", AlertState.FIRING))
    assert second is not None and second != first
    writer.flush()
    assert [(r.id, r.status) for r in rows(sessions)] == [(first, "resolved"), (second, "open")]


def test_expected_comes_from_the_opening_alert(book, writer, sessions, clock):
    expected = book.on_alert(snapshot(clock, 1, "orders", AlertState.FIRING, expected=True))
    book.on_alert(snapshot(clock, 1, "payments", AlertState.FIRING))
    book.on_alert(snapshot(clock, 2, "payments", AlertState.FIRING, expected=True))  # joins: changes nothing
    writer.flush()
    by_service = {r.service_name: r for r in rows(sessions)}
    assert by_service["orders"].id == expected
    assert (by_service["orders"].expected, by_service["payments"].expected) == (True, False)


def test_an_alert_without_service_opens_an_incident_of_the_monitor(book, writer, sessions, clock):
    monitor = book.on_alert(snapshot(clock, 9, None, AlertState.FIRING))
    service = book.on_alert(snapshot(clock, 1, "orders", AlertState.FIRING))
    assert monitor is not None and service is not None and monitor != service
    writer.flush()
    assert {r.service_name for r in rows(sessions)} == {None, "orders"}


def test_open_incidents_survive_a_restart(sessions, clock):
    first_writer = BatchWriter(sessions, clock)
    before = IncidentBook(first_writer, clock)
    incident = before.on_alert(snapshot(clock, 1, "orders", AlertState.FIRING))
    before.on_alert(snapshot(clock, 2, "orders", AlertState.FIRING, severity=Severity.WARNING))
    first_writer.flush()

    writer = BatchWriter(sessions, clock)
    after = IncidentBook(writer, clock)
    with sessions() as s:
        after.load(s)
    [loaded] = after.open_incidents()
    assert (loaded.id, loaded.firing) == (incident, {fingerprint(1, "orders"), fingerprint(2, "orders")})
    clock.advance(60)
    assert after.on_alert(snapshot(clock, 3, "orders", AlertState.FIRING)) == incident  # joins the loaded one
    for rule in (1, 2, 3):
        assert after.on_alert(snapshot(clock, rule, "orders", AlertState.RESOLVED)) == incident
    writer.flush()
    [row] = rows(sessions)
    assert (row.status, row.resolved_at, len(row.fingerprints)) == ("resolved", clock.now(), 3)


def test_loading_resolves_an_incident_whose_alerts_all_resolved_meanwhile(sessions, clock):
    first_writer = BatchWriter(sessions, clock)
    incident = IncidentBook(first_writer, clock).on_alert(snapshot(clock, 1, "orders", AlertState.FIRING))
    first_writer.flush()
    resolved = clock.now() + timedelta(seconds=40)
    with sessions.begin() as s:  # the alert's row says resolved (the incident's resolution was lost in a crash)
        s.add(AlertRow(fingerprint=fingerprint(1, "orders"), rule_id=1, rule_name="rule-1", kind="service-down",
                       severity="critical", service_name="orders", state="resolved", summary="x",
                       active_at=clock.now(), resolved_at=resolved, updated_at=resolved))
    clock.advance(120)
    writer = BatchWriter(sessions, clock)
    book = IncidentBook(writer, clock)
    with sessions() as s:
        book.load(s)
    assert book.open_incidents() == []
    writer.flush()
    [row] = rows(sessions)
    assert (row.id, row.status, row.resolved_at) == (incident, "resolved", resolved)


def test_an_engine_write_keeps_the_acknowledgement(book, writer, sessions, clock):
    incident = book.on_alert(snapshot(clock, 1, "orders", AlertState.FIRING))
    writer.flush()
    acked = clock.now() + timedelta(seconds=5)
    with sessions.begin() as s:
        s.execute(update(IncidentRow).where(IncidentRow.id == incident).values(acknowledged_at=acked,
                                                                                acknowledged_by="alice"))
    clock.advance(30)
    book.on_alert(snapshot(clock, 1, "orders", AlertState.RESOLVED))
    writer.flush()
    [row] = rows(sessions)
    assert (row.status, row.acknowledged_at, row.acknowledged_by) == ("resolved", acked, "alice")


def test_incidents_open_and_resolve_while_the_database_is_away(sessions, clock):
    """on_alert only queues: with the database gone, the rows wait in the writer and land when it returns."""
    dead_engine = make_engine("postgresql://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    try:
        writer = BatchWriter(make_session_factory(dead_engine), clock)
        book = IncidentBook(writer, clock)
        incident = book.on_alert(snapshot(clock, 1, "orders", AlertState.FIRING))
        clock.advance(45)
        assert book.on_alert(snapshot(clock, 1, "orders", AlertState.RESOLVED)) == incident
        assert writer.flush() == 0
        assert writer.status().pending == 2 and writer.status().database_ok is False
        writer._sessions = sessions  # the database is back
        assert writer.flush() == 2
    finally:
        dead_engine.dispose()
    [row] = rows(sessions)
    assert (row.id, row.status, row.resolved_at) == (incident, "resolved", clock.now())


def test_ids_come_from_the_engine(sessions, clock, writer):
    made = [uuid.UUID(int=7), uuid.UUID(int=8)]
    book = IncidentBook(writer, clock, new_id=lambda: made.pop(0))
    assert book.on_alert(snapshot(clock, 1, "orders", AlertState.FIRING)) == uuid.UUID(int=7)
    assert book.on_alert(snapshot(clock, 1, "payments", AlertState.FIRING)) == uuid.UUID(int=8)
    assert book.is_open(uuid.UUID(int=7)) and not book.is_open(uuid.UUID(int=9))


def test_alerts_recorded_firing_join_after_a_restart(sessions, clock, writer):
    with sessions.begin() as s:
        s.add(AlertRow(fingerprint=fingerprint(2, "orders"), rule_id=2, rule_name="rule-2", kind="error-rate",
                       severity="warning", service_name="orders", state="firing", summary="x",
                       active_at=clock.now(), fired_at=clock.now(), updated_at=clock.now()))
    book = IncidentBook(writer, clock)
    with sessions() as s:
        book.load(s)
    incident = book.on_alert(snapshot(clock, 1, "orders", AlertState.FIRING))
    assert incident is not None
    assert book.open_incidents()[0].fingerprints == [fingerprint(1, "orders"), fingerprint(2, "orders")]
    book.on_alert(snapshot(clock, 1, "orders", AlertState.RESOLVED))
    assert book.is_open(incident)  # the warning still fires
