"""Each kind of rule read from the live state, the rolling window of routed traffic it reads, and the monitor's own
database alerted while the writer cannot reach it (then written once it can)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from contract.alerting import AlertKind
from contract.events import ServiceHealthEvent
from db.alerting_models import AlertEventRow, AlertRow
from db.session import make_engine, make_session_factory
from engine.alerting.model import fingerprint
from engine.clock import FakeClock
from engine.stats import percentile
from engine.store.writer import BatchWriter
from engine.traffic.breaker import BreakerConfig
from engine.traffic.window import RELATIVE_ERROR, RollingWindow
from tests.engine.alerting_rig import UNK, D, H, Rig, U, rule, states


@pytest.mark.parametrize(("health", "fires", "value"), [
    ((U, U, U), True, 0.0), ((U, U, UNK), True, 0.0), ((D, U, U), False, 1.0), ((H, H, H), False, 3.0),
], ids=["all-unhealthy", "unhealthy-and-unknown", "one-degraded", "healthy"])
def test_service_down(health, fires, value):
    rig = Rig()
    rig.evaluator.load_rules([rule(kind=AlertKind.SERVICE_DOWN)])
    rig.set_health("orders", *health)
    out = rig.run()
    assert states(out) == ([("orders", "firing")] if fires else [])
    if fires:
        assert out[0].value == value and out[0].summary == "orders is down: no instance serves"


@pytest.mark.parametrize(("health", "fires"), [
    ((H, D, H), True), ((H, U, H), True), ((H, H, H), False), ((U, U, U), False), ((D, D, D), True),
], ids=["one-degraded", "one-unhealthy", "healthy", "down-is-not-degraded", "all-degraded"])
def test_service_degraded(health, fires):
    rig = Rig()
    rig.evaluator.load_rules([rule(kind=AlertKind.SERVICE_DEGRADED)])
    rig.set_health("orders", *health)
    assert states(rig.run()) == ([("orders", "firing")] if fires else [])


def test_instances_below_counts_healthy_instances_only():
    rig = Rig()
    rig.evaluator.load_rules([rule(kind=AlertKind.INSTANCES_BELOW, threshold=2)])
    rig.set_health("orders", H, D, U)
    out = rig.run()
    assert states(out) == [("orders", "firing")] and out[0].value == 1.0
    rig.set_health("orders", H, H, U)
    assert states(rig.run(1)) == [("orders", "resolved")]


def test_error_rate_over_the_window_and_no_requests_does_not_hold():
    rig = Rig()
    rig.evaluator.load_rules([rule(kind=AlertKind.ERROR_RATE, threshold=10, window_s=60)])
    assert rig.run() == []
    for n in range(20):
        rig.recorder.begin("orders")
        rig.recorder.record("orders", 5.0, ok=n >= 3)  # 3 of 20 failed: 15 %
    out = rig.run(1)
    assert states(out) == [("orders", "firing")] and out[0].value == pytest.approx(15.0)
    assert out[0].threshold == 10
    rig.clock.advance(30)
    for _ in range(10):
        rig.recorder.record("orders", 5.0, ok=True)  # 3 of 30: exactly 10 %, not above
    assert states(rig.run()) == [("orders", "resolved")]
    rig.evaluator.set_rule(rule(kind=AlertKind.ERROR_RATE, threshold=9.9, window_s=60))
    assert states(rig.run()) == [("orders", "firing")]
    out = rig.run(31)  # the 20 requests left the window: 0 of 10
    assert states(out) == [("orders", "resolved")]
    rig.evaluator.set_rule(rule(kind=AlertKind.ERROR_RATE, threshold=0, window_s=60))
    rig.run(60)  # nothing routed in the window: not even a threshold of 0 holds
    assert rig.evaluator.alerts()[0].state.value == "resolved"


def test_latency_p95_over_the_window_in_ms():
    rig = Rig()
    rig.evaluator.load_rules([rule(kind=AlertKind.LATENCY_P95, threshold=200, window_s=30)])
    for n in range(100):
        rig.recorder.record("orders", 10.0 if n < 94 else 400.0, ok=True)  # p95 (rank 95) is 400 ms
    out = rig.run()
    assert states(out) == [("orders", "firing")]
    assert out[0].value == pytest.approx(400.0, rel=RELATIVE_ERROR)
    rig.clock.advance(30)
    rig.recorder.record("orders", 10.0, ok=True)
    out = rig.run()
    assert states(out) == [("orders", "resolved")] and out[0].value == pytest.approx(10.0, rel=RELATIVE_ERROR)


def test_breaker_open_and_half_open_hold_closed_does_not():
    rig = Rig()
    rig.evaluator.load_rules([rule(kind=AlertKind.BREAKER_OPEN)])
    assert rig.run() == []  # no breaker made: closed
    breaker = rig.breakers.get("orders")
    breaker.reconfigure(BreakerConfig(failure_threshold=2, open_timeout_ms=10_000))
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure("HTTP 500")
    assert states(rig.run(1)) == [("orders", "firing")]
    assert rig.run(10) == []  # half-open now: still not closed
    assert breaker.allow()
    breaker.record_success(5.0)
    assert states(rig.run(1)) == [("orders", "resolved")]


def test_slo_burn_needs_the_long_and_the_short_window():
    rig = Rig()
    rig.evaluator.load_rules([rule(kind=AlertKind.SLO_BURN, window_s=3600)])
    rig.burn[("orders", 3600.0)] = 20.0
    rig.burn[("orders", 300.0)] = 10.0
    assert rig.run() == []  # the short window burns slower than 14.4
    rig.burn[("orders", 300.0)] = 14.4
    out = rig.run(1)
    assert states(out) == [("orders", "firing")] and out[0].value == 14.4
    rig.burn[("orders", 3600.0)] = 3.0
    assert states(rig.run(1)) == [("orders", "resolved")]
    rig.evaluator.set_rule(rule(kind=AlertKind.SLO_BURN, window_s=60, threshold=2.0))  # a short test window
    rig.burn[("orders", 60.0)] = 2.5
    rig.burn[("orders", 5.0)] = 2.0
    assert states(rig.run(1)) == [("orders", "firing")]
    del rig.burn[("orders", 5.0)]  # no SLO, or no traffic in the short window: unknown does not hold
    assert states(rig.run(1)) == [("orders", "resolved")]


def test_monitor_database_watches_the_writer():
    rig = Rig()
    rig.evaluator.load_rules([rule(kind=AlertKind.MONITOR_DATABASE, service=None)])
    assert rig.run() == []
    rig.db_ok, rig.db_pending = False, 12
    out = rig.run(1)
    assert [(s.service, s.state.value, s.value) for s in out] == [(None, "firing", 12.0)]
    assert out[0].fingerprint == fingerprint(1, None)
    rig.db_ok = True
    assert states(rig.run(1)) == [(None, "resolved")]


def test_monitor_database_fires_and_notifies_while_the_writer_cannot_write_then_its_rows_land(sessions):
    clock = FakeClock()
    dead = make_engine("postgresql://postgres@127.0.0.1:1/gone", connect_args={"connect_timeout": 1})
    writer = BatchWriter(make_session_factory(dead), clock)
    rig = Rig(clock=clock, writer=writer)
    rig.evaluator.load_rules([rule(kind=AlertKind.MONITOR_DATABASE, service=None, for_s=4)])
    rig.set_health("orders", U, U, U)
    writer.submit(ServiceHealthEvent(1, "unhealthy", clock.now()))  # what a round of checks submits: it fails
    assert writer.flush() == 0 and writer.status().database_ok is False
    assert states(rig.run()) == [(None, "pending")]
    assert states(rig.run(4)) == [(None, "firing")]
    assert rig.notices.events() == [("firing", fingerprint(1, None))]
    assert writer.status().pending == 3  # the health row and the alert's two states, waiting
    writer._sessions = sessions  # the database is back
    assert writer.flush() == 3
    assert states(rig.run(1)) == [(None, "resolved")]
    writer.flush()
    with sessions() as s:
        row = s.get(AlertRow, fingerprint(1, None))
        assert row is not None and (row.state, row.kind, row.service_name) == ("resolved", "monitor-database", None)
        assert row.fired_at == clock.now() - timedelta(seconds=1)
        events = s.scalars(select(AlertEventRow.state).order_by(AlertEventRow.id)).all()
        assert events == ["pending", "firing", "resolved"]
    dead.dispose()


# -- the rolling window --------------------------------------------------------------------------


def test_window_counts_cover_the_last_seconds_and_let_old_ones_go():
    clock = FakeClock()
    w = RollingWindow(clock, max_window_s=60)
    for second in range(10):
        for _ in range(second + 1):
            w.add("orders", 1.0, ok=second % 2 == 0)
        clock.advance(1)
    # now: 10 s after the first; a 5 s window holds seconds 6..9 (the current one is empty)
    assert (w.counts("orders", 5).requests, w.counts("orders", 5).errors) == (7 + 8 + 9 + 10, 8 + 10)
    assert w.counts("orders", 60).requests == 55
    w.add("orders", 1.0, ok=False)  # the current second counts at once
    assert w.counts("orders", 5).errors == 19
    clock.advance(100)
    assert w.counts("orders", 60).requests == 0 and w.quantile("orders", 60, 95) is None
    assert w.counts("nosuch", 60).requests == 0
    with pytest.raises(ValueError, match="window_s"):
        w.counts("orders", 61)


def test_window_running_sums_match_a_recount_whatever_the_gaps_between_queries():
    clock = FakeClock()
    w = RollingWindow(clock, max_window_s=20)
    rng = random.Random(3)  # a schedule of requests and queries, not figures shown
    seen: list[tuple[int, bool]] = []  # (second, ok) of every request
    for _ in range(400):
        step = rng.choice((0, 0, 1, 1, 2, 7, 19, 21, 45))  # gaps shorter and longer than the ring
        clock.advance(step)
        for _ in range(rng.randrange(4)):
            ok = rng.random() < 0.7
            w.add("orders", 1.0, ok)
            seen.append((int(clock.monotonic()), ok))
        if rng.random() < 0.5:
            now = int(clock.monotonic())
            for window in (1, 5, 20):
                inside = [ok for second, ok in seen if now - window < second <= now]
                got = w.counts("orders", window)
                assert (got.requests, got.errors) == (len(inside), inside.count(False)), (now, window)


def test_window_p95_is_within_the_relative_error_of_the_exact_nearest_rank():
    clock = FakeClock()
    w = RollingWindow(clock)
    rng = random.Random(7)  # latencies to summarise, not figures shown
    values: list[float] = []
    for _ in range(30):
        for _ in range(200):
            v = rng.lognormvariate(3.0, 1.2)
            values.append(v)
            w.add("orders", v, ok=True)
        clock.advance(1)
    for q in (50, 95, 99):
        exact = percentile(sorted(values), q)
        assert w.quantile("orders", 60, q) == pytest.approx(exact, rel=RELATIVE_ERROR)


def test_window_prune_forgets_idle_services():
    clock = FakeClock()
    w = RollingWindow(clock, max_window_s=10)
    w.add("orders", 1.0, ok=True)
    w.counts("orders", 10)
    clock.advance(5)
    w.prune()
    assert w.services() == 1
    clock.advance(10)
    w.prune()
    assert w.services() == 0 and w.counts("orders", 10).requests == 0


def test_a_failing_slo_source_leaves_slo_burn_unknown_and_the_other_rules_running():
    rig = Rig()
    rig.evaluator.load_rules([rule(kind=AlertKind.SLO_BURN), rule(2, AlertKind.MONITOR_DATABASE, None)])

    def broken(service, window_s):
        raise RuntimeError("SLO store gone")

    rig.burn_rate = broken  # type: ignore[method-assign]  # the rig is the SLO source
    rig.db_ok = False
    assert states(rig.run()) == [(None, "firing")]
