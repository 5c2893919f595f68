"""Health history queries on a real PostgreSQL: exact uptime from transitions, unknown time, evidence bound,
rollup upserts, checks over day and minute rollups, daily bars, latency steps, start-up closing, retention."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from contract.events import CheckRollupEvent
from db import history
from db.models import (
    Instance,
    InstanceCheckDay,
    InstanceCheckMinute,
    InstanceHealthTransition,
    Service,
    ServiceHealthTransition,
)

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TEN_MIN = timedelta(minutes=10)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def register(sessions, instances: int = 2) -> tuple[int, list[int]]:
    with sessions.begin() as s:
        service = Service(name="orders", instances=[Instance(url=f"http://127.0.0.1:{9000 + n}")
                                                    for n in range(instances)])
        s.add(service)
        s.flush()
        return service.id, [i.id for i in service.instances]


def service_changes(sessions, sid: int, *changes: tuple[float, str, str]) -> None:
    with sessions.begin() as s:
        s.add_all(ServiceHealthTransition(service_id=sid, from_state=a, to_state=b, at=at(t)) for t, a, b in changes)


def instance_changes(sessions, sid: int, iid: int, *changes: tuple[float, str, str]) -> None:
    with sessions.begin() as s:
        s.add_all(InstanceHealthTransition(service_id=sid, instance_id=iid, from_state=a, to_state=b, at=at(t))
                  for t, a, b in changes)


def rollup(sid: int, iid: int, minute: datetime, checks: int = 12, down: int = 0, latency: float = 10.0,
           latency_max: float | None = None) -> CheckRollupEvent:
    measured = checks - down
    return CheckRollupEvent(sid, iid, minute, checks, checks - down, 0, down, measured, latency * measured,
                            (latency_max or latency) if measured else None)


def checked(sessions, sid: int, iids: list[int], start: datetime, minutes: int) -> None:
    """Evidence: a rollup row per instance per minute from start."""
    with sessions.begin() as s:
        history.upsert_rollups(s, [rollup(sid, i, start + timedelta(minutes=m)) for m in range(minutes)
                                   for i in iids])


def test_a_service_down_60_s_of_a_10_minute_window_is_up_90_percent_exactly(sessions):
    sid, iids = register(sessions)
    service_changes(sessions, sid, (-3600, "unknown", "healthy"), (300, "healthy", "unhealthy"),
                    (360, "unhealthy", "degraded"))
    checked(sessions, sid, iids, T0 - timedelta(minutes=5), 20)
    with sessions() as s:
        a = history.service_availability(s, sid, T0, T0 + TEN_MIN)
        several = history.services_availability(s, [sid, sid + 1], T0, T0 + TEN_MIN)
    assert a.uptime_percent == 90.0
    assert (a.up_s, a.down_s, a.observed_s, a.incidents) == (540.0, 60.0, 600.0, 1)
    assert several == {sid: a, sid + 1: history.Availability(0.0, 0.0, 0)}


def test_time_before_the_first_check_and_while_stopped_is_unknown(sessions):
    sid, iids = register(sessions)
    # first seen at 120 s; down 60 s; engine stopped from 300 s to 420 s
    service_changes(sessions, sid, (120, "unknown", "healthy"), (180, "healthy", "unhealthy"),
                    (240, "unhealthy", "healthy"), (300, "healthy", "unknown"), (420, "unknown", "unhealthy"),
                    (450, "unhealthy", "healthy"))
    checked(sessions, sid, iids, T0, 10)
    with sessions() as s:
        a = history.service_availability(s, sid, T0, T0 + TEN_MIN)
    assert (a.up_s, a.down_s, a.incidents) == (120.0 + 150.0, 60.0 + 30.0, 2)
    assert a.uptime_percent == pytest.approx(270 * 100 / 360, abs=1e-4)


def test_nothing_observed_is_none_not_zero(sessions):
    sid, _ = register(sessions)
    with sessions() as s:
        a = history.service_availability(s, sid, T0, T0 + TEN_MIN)
    assert a == history.Availability(0.0, 0.0, 0) and a.uptime_percent is None


def test_the_last_state_ends_at_the_last_evidence_plus_grace(sessions):
    """An engine that died at 2 min: its last state is not extended to the window's end."""
    sid, iids = register(sessions)
    service_changes(sessions, sid, (0, "unknown", "healthy"))
    instance_changes(sessions, sid, iids[0], (0, "unknown", "healthy"))
    checked(sessions, sid, iids[:1], T0, 2)  # minutes 0 and 1: observed until 120 s
    with sessions() as s:
        a = history.service_availability(s, sid, T0, T0 + TEN_MIN, grace=timedelta(seconds=30))
        each = history.instance_availability(s, sid, iids, T0, T0 + TEN_MIN, grace=timedelta(seconds=30))
        within = history.service_availability(s, sid, T0, at(100), grace=timedelta(seconds=30))
    assert a.up_s == 150.0
    assert each[iids[0]].up_s == 150.0 and each[iids[1]] == history.Availability(0.0, 0.0, 0)
    assert within.up_s == 100.0  # the window's end comes first


def test_the_state_before_the_window_is_carried_in(sessions):
    sid, iids = register(sessions)
    service_changes(sessions, sid, (-86400, "unknown", "unhealthy"), (300, "unhealthy", "healthy"))
    checked(sessions, sid, iids[:1], T0 - timedelta(minutes=3), 15)
    with sessions() as s:
        a = history.service_availability(s, sid, T0, T0 + TEN_MIN)
    assert (a.up_s, a.down_s, a.incidents) == (300.0, 300.0, 0)  # the down period began before the window


def test_instance_figures_and_checks_over_days_and_minutes(sessions):
    sid, iids = register(sessions)
    a, b = iids
    instance_changes(sessions, sid, a, (0, "unknown", "healthy"))
    instance_changes(sessions, sid, b, (0, "unknown", "healthy"), (120, "healthy", "unhealthy"),
                     (240, "unhealthy", "healthy"))
    checked(sessions, sid, iids, T0, 10)
    with sessions() as s:
        each = history.instance_availability(s, sid, iids, T0, T0 + TEN_MIN)
        checks = history.window_checks(s, sid, T0, T0 + TEN_MIN)
    assert each[a].uptime_percent == 100.0 and each[a].down_s == 0.0
    assert each[b].uptime_percent == 80.0 and each[b].down_s == 120.0 and each[b].incidents == 1
    assert checks == {a: 120, b: 120}


def test_checks_of_a_long_window_read_whole_days_and_the_edges(sessions):
    sid, iids = register(sessions, 1)
    iid = iids[0]
    start = datetime(2026, 3, 1, 23, 58, tzinfo=UTC)
    minutes = [start + timedelta(minutes=m) for m in range(4)]  # 23:58, 23:59 on the 1st, 00:00, 00:01 on the 2nd
    days = [datetime(2026, 3, d, 12, tzinfo=UTC) for d in (3, 4)]  # whole days in between
    end = datetime(2026, 3, 5, 0, 1, tzinfo=UTC)
    tail = [datetime(2026, 3, 5, 0, 0, tzinfo=UTC)]
    with sessions.begin() as s:
        history.upsert_rollups(s, [rollup(sid, iid, m, checks=1) for m in minutes + days + tail])
    with sessions() as s:
        assert history.split_days(start, end) == ((date(2026, 3, 2), date(2026, 3, 5)),
                                                  [(start, datetime(2026, 3, 2, tzinfo=UTC)),
                                                   (datetime(2026, 3, 5, tzinfo=UTC), end)])
        assert history.window_checks(s, sid, start, end) == {iid: 7}  # 2 edge minutes, 2 + 2 + 2 daily, 1 edge
        assert history.window_checks(s, sid, start + timedelta(minutes=1), end) == {iid: 6}
        assert history.window_checks(s, sid, start, datetime(2026, 3, 5, tzinfo=UTC)) == {iid: 6}


def test_a_minute_written_twice_adds_up(sessions):
    """Before a stop the engine writes the open minute; after the restart the rest of that minute."""
    sid, iids = register(sessions, 1)
    iid = iids[0]
    with sessions.begin() as s:
        history.upsert_rollups(s, [rollup(sid, iid, T0, checks=5, down=1, latency=10.0, latency_max=30.0)])
    with sessions.begin() as s:
        history.upsert_rollups(s, [rollup(sid, iid, T0, checks=7, down=2, latency=20.0, latency_max=25.0),
                                   rollup(sid, iid, T0, checks=1, down=1)])
    with sessions() as s:
        row = s.scalars(select(InstanceCheckMinute)).one()
        day = s.scalars(select(InstanceCheckDay)).one()
    assert (row.checks, row.up, row.down, row.latency_n) == (13, 9, 4, 9)
    assert row.latency_sum_ms == pytest.approx(4 * 10.0 + 5 * 20.0) and row.latency_max_ms == 30.0
    assert (day.day, day.checks, day.latency_n, day.latency_max_ms) == (T0.date(), 13, 9, 30.0)


def test_daily_bars_are_none_for_unobserved_days(sessions):
    sid, iids = register(sessions, 1)
    # observed from 2026-03-09 18:00; down 6 h on the 10th
    service_changes(sessions, sid, (-18 * 3600, "unknown", "healthy"), (0, "healthy", "unhealthy"),
                    (6 * 3600, "unhealthy", "healthy"))
    checked(sessions, sid, iids, T0 - timedelta(hours=18), 36 * 60)  # evidence up to 2026-03-11 00:00
    with sessions() as s:
        bars = history.daily_availability(s, sid, date(2026, 3, 8), date(2026, 3, 10), at(3 * 3600))
    assert list(bars) == [date(2026, 3, 8), date(2026, 3, 9), date(2026, 3, 10)]
    assert bars[date(2026, 3, 8)] == (history.Availability(0.0, 0.0, 0), 0)
    nine, ten = bars[date(2026, 3, 9)], bars[date(2026, 3, 10)]
    assert nine[0].uptime_percent == 100.0 and nine[0].up_s == 6 * 3600 and nine[1] == 6 * 60 * 12
    assert (ten[0].up_s, ten[0].down_s, ten[0].incidents) == (12 * 3600.0, 3 * 3600.0, 1)  # clipped at now: 15:00
    assert ten[0].uptime_percent == 80.0


def test_latency_series_per_minute_and_per_day(sessions):
    sid, iids = register(sessions)
    with sessions.begin() as s:
        history.upsert_rollups(s, [rollup(sid, iids[0], T0, latency=10.0, latency_max=40.0),
                                   rollup(sid, iids[1], T0, latency=30.0, latency_max=50.0),
                                   rollup(sid, iids[1], at(60), checks=2, down=2)])
    with sessions() as s:
        minutes = history.latency_series(s, sid, T0, T0 + TEN_MIN, timedelta(minutes=1))
        days = history.latency_series(s, sid, T0 - timedelta(days=2), T0 + TEN_MIN, timedelta(days=1))
    assert minutes == [history.LatencyPoint(T0, 24, 20.0, 50.0), history.LatencyPoint(at(60), 2, None, None)]
    assert days == [history.LatencyPoint(datetime(2026, 3, 10, tzinfo=UTC), 26, 20.0, 50.0)]


def test_start_closes_periods_an_engine_left_open_at_its_last_evidence(sessions):
    sid, iids = register(sessions)
    service_changes(sessions, sid, (0, "unknown", "healthy"))
    instance_changes(sessions, sid, iids[0], (0, "unknown", "healthy"))
    instance_changes(sessions, sid, iids[1], (0, "unknown", "healthy"), (30, "healthy", "unknown"))
    checked(sessions, sid, iids[:1], T0, 3)  # rows for minutes 0..2: evidence until 180 s
    with sessions.begin() as s:
        assert history.close_open_periods(s, at(3600)) == (1, 1)
    with sessions.begin() as s:
        assert history.close_open_periods(s, at(3600)) == (0, 0)  # nothing left open
    with sessions() as s:
        last = s.scalars(select(InstanceHealthTransition).order_by(InstanceHealthTransition.id.desc())).first()
        service_last = s.scalars(select(ServiceHealthTransition).order_by(ServiceHealthTransition.id.desc())).first()
    assert last is not None and (last.instance_id, last.from_state, last.to_state, last.at) == (
        iids[0], "healthy", "unknown", at(180))
    assert service_last is not None and (service_last.to_state, service_last.at) == ("unknown", at(180))


def test_retention_keeps_the_state_that_still_holds(sessions):
    sid, iids = register(sessions, 1)
    service_changes(sessions, sid, (-10 * 86400, "unknown", "healthy"), (-9 * 86400, "healthy", "degraded"),
                    (60, "degraded", "healthy"))
    service_changes(sessions, sid + 1, (-10 * 86400, "unknown", "healthy"))  # a deleted service
    with sessions.begin() as s:
        history.upsert_rollups(s, [rollup(sid, iids[0], T0 - timedelta(days=8)), rollup(sid, iids[0], T0)])
        deleted = history.delete_history_older(s, T0 - timedelta(days=5))
    with sessions() as s:
        kept = [(t.service_id, t.to_state) for t in s.scalars(select(ServiceHealthTransition)
                                                               .order_by(ServiceHealthTransition.id))]
        days = s.scalar(select(func.count()).select_from(InstanceCheckDay))
    assert deleted == 3  # the oldest of orders, the deleted service's, one daily row
    assert kept == [(sid, "degraded"), (sid, "healthy")] and days == 1


def test_transitions_for_timelines(sessions):
    sid, iids = register(sessions)
    instance_changes(sessions, sid, iids[1], (10, "unknown", "healthy"), (20, "healthy", "unhealthy"))
    instance_changes(sessions, sid, iids[0], (15, "unknown", "healthy"))
    service_changes(sessions, sid, (10, "unknown", "healthy"), (20, "healthy", "degraded"))
    with sessions() as s:
        rows = history.instance_transitions(s, sid, at(11), at(30))
        services = history.service_transitions(s, sid, T0, at(30))
    assert [(r.instance_id, r.to_state) for r in rows] == [(iids[0], "healthy"), (iids[1], "unhealthy")]
    assert [r.to_state for r in services] == ["healthy", "degraded"]
