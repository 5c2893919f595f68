"""Outlier ejection on a fake clock: the run of errors, the growing ejection, the per-service cap."""

from __future__ import annotations

import pytest

from engine.clock import FakeClock
from engine.traffic.outlier import Ejection, OutlierEjector


def fail(ejector, instance_id, times, service="orders", size=4):
    """Observe `times` errors in a row; return the ejections they caused."""
    out = [ejector.observe(service, instance_id, True, size) for _ in range(times)]
    return [e for e in out if e is not None]


def test_the_consecutive_th_error_ejects_for_the_base_time():
    clock = FakeClock()
    ejector = OutlierEjector(clock, consecutive=3, base_s=30, max_percent=50)
    start = clock.monotonic()
    assert fail(ejector, 7, 2) == [] and not ejector.is_ejected(7)
    assert fail(ejector, 7, 1) == [Ejection(7, "orders", start + 30, 1)]
    assert ejector.is_ejected(7) and ejector.ejected() == [Ejection(7, "orders", start + 30, 1)]
    clock.advance(29.999)
    assert ejector.is_ejected(7)
    clock.advance(0.001)
    assert not ejector.is_ejected(7) and ejector.ejected() == []


def test_a_repeat_offender_stays_out_base_times_n():
    """No cap on the length: the n-th ejection of one instance lasts base_s x n."""
    clock = FakeClock()
    ejector = OutlierEjector(clock, consecutive=3, base_s=30, max_percent=50)
    lengths = []
    for n in range(1, 6):
        began = clock.monotonic()
        (ejection,) = fail(ejector, 7, 3)
        assert ejection.times == n
        lengths.append(ejection.until - began)
        clock.advance(ejection.until - began - 1)
        assert ejector.is_ejected(7)  # one second before its end
        clock.advance(1)
        assert not ejector.is_ejected(7)
    assert lengths == [30, 60, 90, 120, 150]


def test_a_success_resets_the_run_of_errors():
    clock = FakeClock()
    ejector = OutlierEjector(clock, consecutive=3, base_s=30, max_percent=50)
    assert fail(ejector, 7, 2) == []
    assert ejector.observe("orders", 7, False, 0) is None
    assert fail(ejector, 7, 2) == [] and not ejector.is_ejected(7)  # 2 + 2 errors, but not 3 in a row
    assert len(fail(ejector, 7, 1)) == 1 and ejector.is_ejected(7)


def test_errors_while_ejected_do_not_extend_it_and_the_run_restarts_after():
    clock = FakeClock()
    ejector = OutlierEjector(clock, consecutive=3, base_s=30, max_percent=50)
    (first,) = fail(ejector, 7, 3)
    assert fail(ejector, 7, 10) == [] and ejector.ejected() == [first]
    clock.advance(30)
    assert not ejector.is_ejected(7)  # the ejection's end clears the run
    assert fail(ejector, 7, 2) == [] and not ejector.is_ejected(7)
    assert [e.times for e in fail(ejector, 7, 1)] == [2]


def test_instances_count_their_own_runs():
    clock = FakeClock()
    ejector = OutlierEjector(clock, consecutive=3, base_s=30, max_percent=100)
    for _ in range(2):
        fail(ejector, 1, 1)
        fail(ejector, 2, 1)
    assert ejector.ejected() == []
    assert [e.instance_id for e in fail(ejector, 1, 1)] == [1]
    assert not ejector.is_ejected(2)


# max(1, floor(size x max_percent / 100)) may be out at once: at least one, so a one-instance service can be
# left with none (the router then answers NoInstance, a fallback)
CAPS = [(1, 50, 1), (2, 50, 1), (3, 50, 1), (4, 50, 2), (5, 50, 2), (10, 50, 5), (10, 10, 1), (10, 35, 3),
        (1, 0, 1)]


@pytest.mark.parametrize(("size", "max_percent", "cap"), CAPS, ids=[f"{s}x{p}pct" for s, p, _ in CAPS])
def test_no_more_than_the_max_percent_of_a_service_is_out_and_at_least_one_may_be(size, max_percent, cap):
    clock = FakeClock()
    ejector = OutlierEjector(clock, consecutive=2, base_s=30, max_percent=max_percent)
    for instance_id in range(1, size + 1):
        fail(ejector, instance_id, 5, size=size)
    assert sorted(e.instance_id for e in ejector.ejected()) == list(range(1, cap + 1))
    assert [ejector.is_ejected(i) for i in range(1, size + 1)] == [True] * cap + [False] * (size - cap)


def test_the_cap_is_per_service_and_frees_up_when_an_ejection_ends():
    clock = FakeClock()
    ejector = OutlierEjector(clock, consecutive=2, base_s=30, max_percent=50)
    fail(ejector, 1, 2, service="orders", size=2)
    fail(ejector, 11, 2, service="billing", size=2)
    assert fail(ejector, 2, 2, service="orders", size=2) == []  # orders already has its one out
    assert sorted(e.instance_id for e in ejector.ejected()) == [1, 11]
    clock.advance(30)
    assert not ejector.is_ejected(1)
    assert [e.instance_id for e in fail(ejector, 2, 1, service="orders", size=2)] == [2]  # its run went on
