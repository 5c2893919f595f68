"""The alert state machine on a fake clock: pending, firing, repeat, resolved, a new episode, silences, expected,
forSeconds 0, rules and services deleted or changed, alerts restored at start, incidents and what is written."""

from __future__ import annotations

from datetime import timedelta

from contract.alerting import AlertKind, AlertState, Severity
from db.alerting_models import AlertRow
from engine.alerting.model import fingerprint
from tests.engine.alerting_rig import UNK, H, Rig, U, rule, states

FP = fingerprint(1, "orders")


def test_pending_for_forseconds_then_firing_then_resolved_with_one_notice_each():
    rig = Rig()
    rig.evaluator.load_rules([rule(for_s=10)])
    rig.set_health("orders", U, U, U)
    first = rig.run()
    assert states(first) == [("orders", "pending")] and first[0].changed
    assert first[0].fingerprint == FP and first[0].fired_at is None
    assert rig.notices.sent == []
    assert rig.run(9.9) == []  # still pending, nothing changed: nothing written
    firing = rig.run(0.1)
    assert states(firing) == [("orders", "firing")]
    assert firing[0].active_at == first[0].active_at
    assert firing[0].fired_at == rig.clock.now() and firing[0].last_notified_at == rig.clock.now()
    assert rig.notices.events() == [("firing", FP)] and rig.notices.sent[0].channels == (1,)
    assert rig.run(30) == []
    rig.set_health("orders", H, U, U)
    resolved = rig.run(2)
    assert states(resolved) == [("orders", "resolved")] and resolved[0].resolved_at == rig.clock.now()
    assert rig.notices.events() == [("firing", FP), ("resolved", FP)]
    written = rig.alert_events()
    assert [(e.state, e.changed) for e in written] == [("pending", True), ("firing", True), ("resolved", True)]
    assert written[-1].value == 1.0  # one instance serves again


def test_next_due_is_when_a_pending_alert_fires_or_a_firing_one_repeats():
    rig = Rig()
    rig.evaluator.load_rules([rule(for_s=10, repeat_s=30)])
    assert rig.evaluator.next_due() is None
    rig.set_health("orders", U, U, U)
    rig.run()
    began = rig.clock.now()
    assert rig.evaluator.next_due() == began + timedelta(seconds=10)
    rig.run(10)
    assert rig.evaluator.next_due() == began + timedelta(seconds=40)  # the repeat, 30 s after the firing notice
    rig.set_health("orders", H, H, H)
    rig.run(1)
    assert rig.evaluator.next_due() is None


def test_a_pending_alert_that_stops_holding_resolves_without_a_notice():
    rig = Rig()
    rig.evaluator.load_rules([rule(for_s=60)])
    rig.set_health("orders", U, U, U)
    rig.run()
    rig.set_health("orders", H, H, H)
    assert states(rig.run(30)) == [("orders", "resolved")]
    assert rig.notices.sent == []


def test_forseconds_zero_fires_at_the_first_evaluation_that_sees_it():
    rig = Rig()
    rig.evaluator.load_rules([rule(for_s=0)])
    rig.set_health("orders", U, U, U)
    out = rig.run()
    assert states(out) == [("orders", "firing")] and out[0].active_at == out[0].fired_at
    assert [e.state for e in rig.alert_events()] == ["firing"]
    assert rig.notices.events() == [("firing", FP)]


def test_repeat_every_repeatseconds_while_firing_written_but_not_a_change():
    rig = Rig()
    rig.evaluator.load_rules([rule(repeat_s=30)])
    rig.set_health("orders", U, U, U)
    rig.run()
    assert rig.run(29) == []
    repeat = rig.run(1)
    assert [(s.state.value, s.changed) for s in repeat] == [("firing", False)]
    assert repeat[0].last_notified_at == rig.clock.now()
    rig.run(20)
    rig.run(10)
    assert [e for e, _ in rig.notices.events()] == ["firing", "repeat", "repeat"]
    assert [(e.state, e.changed) for e in rig.alert_events()] == [("firing", True), ("firing", False),
                                                                  ("firing", False)]


def test_a_resolved_alert_whose_condition_holds_again_starts_a_new_episode():
    rig = Rig()
    rig.evaluator.load_rules([rule(for_s=5, severity=Severity.CRITICAL)])
    rig.set_health("orders", U, U, U)
    rig.run()
    first = rig.run(5)[0]
    assert first.incident_id is not None
    rig.set_health("orders", H, H, H)
    rig.run(1)
    rig.set_health("orders", U, U, U)
    again = rig.run(10)
    assert states(again) == [("orders", "pending")]
    assert again[0].fingerprint == FP and again[0].active_at == rig.clock.now()
    assert again[0].fired_at is None and again[0].resolved_at is None
    assert again[0].incident_id is None  # the sink opens incidents on firing critical alerts of an episode
    refired = rig.run(5)
    assert states(refired) == [("orders", "firing")]
    assert refired[0].incident_id not in (None, first.incident_id)
    assert [e for e, _ in rig.notices.events()] == ["firing", "resolved", "firing"]


def test_a_silenced_alert_is_evaluated_and_shown_but_not_notified_until_the_silence_ends():
    rig = Rig()
    rig.evaluator.load_rules([rule()])
    rig.silence(7, "orders", None, seconds=60)
    rig.set_health("orders", U, U, U)
    out = rig.run()
    assert states(out) == [("orders", "firing")] and out[0].silenced and not out[0].expected
    assert rig.notices.sent == [] and out[0].last_notified_at is None
    assert rig.evaluator.alerts()[0].silenced
    assert rig.run(30) == []
    unsilenced = rig.run(30)  # the silence ended: a change, and the firing notice it held back
    assert [(s.state.value, s.silenced, s.changed) for s in unsilenced] == [("firing", False, True)]
    assert rig.notices.events() == [("firing", FP)]
    assert [(e.state, e.silenced) for e in rig.alert_events()] == [("firing", True), ("firing", False)]


def test_a_silence_starting_while_firing_holds_back_repeats_and_the_resolved_notice():
    rig = Rig()
    rig.evaluator.load_rules([rule(repeat_s=10)])
    rig.set_health("orders", U, U, U)
    rig.run()
    rig.silence(1, None, 1, seconds=3600)  # the rule, every service
    assert [s.silenced for s in rig.run(10)] == [True]
    rig.run(10)
    rig.set_health("orders", H, H, H)
    assert states(rig.run(1)) == [("orders", "resolved")]
    assert [e for e, _ in rig.notices.events()] == ["firing"]


def test_a_simulations_silence_marks_the_alert_expected():
    rig = Rig()
    rig.evaluator.load_rules([rule(), rule(2, AlertKind.SERVICE_DOWN, "payments")])
    rig.silence(3, "orders", None, seconds=60, simulation_id=42)
    rig.set_health("orders", U, U, U)
    rig.set_health("payments", U, U)
    out = {s.service: s for s in rig.run()}
    assert (out["orders"].silenced, out["orders"].expected) == (True, True)
    assert (out["payments"].silenced, out["payments"].expected) == (False, False)
    assert rig.notices.events() == [("firing", fingerprint(2, "payments"))]


def test_a_rule_for_every_service_makes_one_alert_each():
    rig = Rig()
    rig.evaluator.load_rules([rule(service=None)])
    rig.set_health("orders", U, U, U)
    rig.set_health("payments", U, U)
    out = rig.run()
    assert sorted(states(out)) == [("orders", "firing"), ("payments", "firing")]
    assert {s.fingerprint for s in out} == {fingerprint(1, "orders"), fingerprint(1, "payments")}


def test_a_deleted_rule_resolves_its_alerts_and_notifies_the_resolution():
    rig = Rig()
    rig.evaluator.load_rules([rule(name="orders-down")])
    rig.set_health("orders", U, U, U)
    rig.run()
    rig.evaluator.drop_rule(1)
    out = rig.run(2)
    assert states(out) == [("orders", "resolved")] and out[0].summary == "rule orders-down was deleted"
    assert rig.notices.events() == [("firing", FP), ("resolved", FP)]
    assert rig.run(2) == []


def test_a_deleted_service_resolves_its_alerts():
    rig = Rig()
    rig.evaluator.load_rules([rule(service=None)])
    rig.set_health("payments", U, U)
    rig.set_health("orders", H, H, H)
    assert states(rig.run()) == [("payments", "firing")]
    rig.registry.replace(tuple(s for s in rig.registry.services() if s.name != "payments"))
    out = rig.run(2)
    assert states(out) == [("payments", "resolved")]
    assert out[0].summary == "service payments is no longer registered"


def test_a_changed_threshold_re_evaluates_and_a_changed_kind_starts_anew():
    rig = Rig()
    rig.evaluator.load_rules([rule(kind=AlertKind.INSTANCES_BELOW, threshold=3)])
    rig.set_health("orders", H, H, U)
    assert states(rig.run()) == [("orders", "firing")]
    rig.evaluator.set_rule(rule(kind=AlertKind.INSTANCES_BELOW, threshold=4))
    assert rig.run(2) == []  # still holds: the same episode goes on
    rig.evaluator.set_rule(rule(kind=AlertKind.INSTANCES_BELOW, threshold=2))
    assert states(rig.run(2)) == [("orders", "resolved")]
    rig.evaluator.set_rule(rule(kind=AlertKind.INSTANCES_BELOW, threshold=3))
    assert states(rig.run(2)) == [("orders", "firing")]
    rig.evaluator.set_rule(rule(kind=AlertKind.SERVICE_DEGRADED))
    out = rig.run(2)
    assert states(out) == [("orders", "resolved"), ("orders", "firing")]
    assert out[0].summary == "rule rule-1 now watches service-degraded" and out[1].kind is AlertKind.SERVICE_DEGRADED


def test_a_rule_for_a_service_not_registered_evaluates_nothing():
    rig = Rig()
    rig.evaluator.load_rules([rule(service="nosuch")])
    assert rig.run() == [] and rig.evaluator.alerts() == []


def test_an_unknown_health_begins_nothing_and_ends_nothing():
    rig = Rig()
    rig.evaluator.load_rules([rule()])
    assert rig.run() == []  # no check yet: not down
    rig.set_health("orders", U, U, U)
    rig.run(1)
    rig.set_health("orders", UNK, UNK, UNK)
    assert rig.run(1) == [] and rig.evaluator.alerts()[0].state is AlertState.FIRING


def restored_row(state: str, notified: bool, rule_id: int = 1) -> AlertRow:
    rig_start = Rig().clock.now() - timedelta(minutes=5)
    return AlertRow(fingerprint=fingerprint(rule_id, "orders"), rule_id=rule_id, rule_name="orders-down",
                    kind="service-down", severity="warning", service_name="orders", state=state, silenced=False,
                    value=0.0, threshold=None, summary="orders is down", active_at=rig_start,
                    fired_at=rig_start if state == "firing" else None, resolved_at=None,
                    last_notified_at=rig_start if notified else None, incident_id=None, updated_at=rig_start)


def test_a_firing_alert_restored_at_start_is_not_notified_again_and_resolves_with_a_notice():
    rig = Rig()
    rig.evaluator.load_rules([rule(for_s=60)])
    assert rig.evaluator.restore([restored_row("firing", notified=True)]) == 1
    assert rig.run() == []  # health unknown before the first checks: it goes on as it was
    rig.set_health("orders", U, U, U)
    assert rig.run(2) == []
    assert rig.notices.sent == []
    rig.set_health("orders", H, H, H)
    assert states(rig.run(2)) == [("orders", "resolved")]
    assert rig.notices.events() == [("resolved", FP)]


def test_a_restored_pending_alert_keeps_its_active_time_and_fires_when_due():
    rig = Rig()
    rig.evaluator.load_rules([rule(for_s=600)])
    row = restored_row("pending", notified=False)
    rig.evaluator.restore([row])
    rig.set_health("orders", U, U, U)
    assert rig.run() == []
    out = rig.run(300)  # 5 min before the start + 5 min = 10 min
    assert states(out) == [("orders", "firing")] and out[0].active_at == row.active_at
    assert rig.notices.events() == [("firing", FP)]


def test_a_restored_alert_whose_rule_is_gone_resolves():
    rig = Rig()
    rig.evaluator.load_rules([])
    rig.evaluator.restore([restored_row("firing", notified=True, rule_id=9)])
    out = rig.run()
    assert [(s.rule_id, s.state.value, s.summary) for s in out] == [(9, "resolved", "rule orders-down was deleted")]


def test_incident_ids_go_on_the_snapshot_written_and_notified():
    rig = Rig()
    rig.evaluator.load_rules([rule(severity=Severity.CRITICAL, repeat_s=10)])
    rig.set_health("orders", U, U, U)
    out = rig.run()
    incident = out[0].incident_id
    assert incident is not None
    assert rig.alert_events()[0].incident_id == incident and rig.notices.sent[0].alert.incident_id == incident
    rig.run(10)
    assert rig.notices.sent[1].alert.incident_id == incident
    assert [s.state.value for s in rig.incidents.seen] == ["firing", "firing"]
    assert str(rig.evaluator.alerts()[0].incident_id) == str(incident)


def test_a_rule_without_channels_notifies_nothing_but_is_written():
    rig = Rig()
    rig.evaluator.load_rules([rule(channels=())])
    rig.set_health("orders", U, U, U)
    assert states(rig.run()) == [("orders", "firing")]
    assert rig.notices.sent == [] and len(rig.alert_events()) == 1


def test_alerts_are_listed_newest_first_and_resolved_ones_kept_a_day():
    rig = Rig()
    rig.evaluator.load_rules([rule(service=None)])
    rig.set_health("payments", U, U)
    rig.run()
    rig.set_health("orders", U, U, U)
    rig.run(5)
    assert [a.service for a in rig.evaluator.alerts()] == ["orders", "payments"]
    rig.set_health("orders", H, H, H)
    rig.set_health("payments", H, H)
    rig.run(5)
    assert {a.state for a in rig.evaluator.alerts()} == {AlertState.RESOLVED}
    rig.run(86_401)
    assert rig.evaluator.alerts() == []
