"""The HPA rule: ceil(current x value / target), tolerance, stabilization windows, max step, bounds."""

from __future__ import annotations

import pytest

from contract.scaling import AutoscalerConfig, AutoscalerMetric
from engine.scaling.hpa import Stabilizer, decide

CFG = AutoscalerConfig(metric=AutoscalerMetric.INFLIGHT, target=5.0, tolerance=0.1, up_window_s=0.0, down_window_s=60.0,
                       max_step=4)


@pytest.mark.parametrize("current, value, desired, reason", [
    (2, 7.5, 3, "ceil(2 x 1.50) = 3"),
    (2, 5.4, 2, "within 10% of the target"),       # 1.08: inside the tolerance
    (2, 4.6, 2, "within 10% of the target"),       # 0.92: inside
    (2, 5.6, 3, "ceil(2 x 1.12) = 3"),             # 1.12: outside
    (1, 100.0, 5, "max step: 5"),                  # raw 20, one period moves at most 4
    (4, 50.0, 6, "limited to max 6"),              # raw 40, step to 8, bounded by max 6
    (3, None, 3, "not measured"),
    (6, 40.0, 6, "at the max of 6"),
], ids=["up", "tolerance-above", "tolerance-below", "just-outside", "max-step", "max-bound", "unknown", "at-max"])
def test_one_period(current, value, desired, reason):
    d = decide(CFG, current, value, 1000.0, Stabilizer(), 1, 6)
    assert d.desired == desired and reason in d.reason


def test_scale_down_waits_for_the_whole_window_of_lower_recommendations():
    history = Stabilizer()
    now = 1000.0
    assert decide(CFG, 3, 5.0, now, history, 1, 6).desired == 3  # on target
    seen = []
    for t in range(0, 75, 15):  # the load is gone: raw 0 every 15 s
        seen.append(decide(CFG, 3, 0.0, now + 15 + t, history, 1, 6))
    assert [d.desired for d in seen] == [3, 3, 3, 3, 1]  # the on-target 3 leaves the 60 s window at t=75
    assert "held by the 60 s scale-down window" in seen[0].reason
    assert seen[-1].direction == "down" and "limited to min 1" in seen[-1].reason


def test_scale_up_window_takes_the_lowest_recent_recommendation():
    cfg = AutoscalerConfig(target=5.0, up_window_s=30.0, down_window_s=0.0)
    history = Stabilizer()
    assert decide(cfg, 2, 5.0, 0.0, history, 1, 10).desired == 2
    spike = decide(cfg, 2, 20.0, 10.0, history, 1, 10)  # raw 8, but 2 was recommended 10 s ago
    assert spike.desired == 2 and "scale-up window" in spike.reason
    later = decide(cfg, 2, 20.0, 31.0, history, 1, 10)  # the 2 is out of the window; the spike's 8 remains
    assert later.desired == 6  # 2 + max step 4


def test_no_instance_starts_the_minimum():
    assert decide(CFG, 0, None, 0.0, Stabilizer(), 2, 6).desired == 2


@pytest.mark.parametrize("bad", [{"metric": "rps"}, {"target": 0}, {"tolerance": 1.0}, {"max_step": 0},
                                 {"down_window_s": -1}], ids=["metric", "target", "tolerance", "step", "window"])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        AutoscalerConfig(**bad)


def test_a_zero_window_acts_on_the_newest_recommendation_even_at_the_same_instant():
    cfg = AutoscalerConfig(target=5.0, up_window_s=0.0, down_window_s=0.0)
    history = Stabilizer()
    history.add(10.0, 2, 0.0)  # a fresh start's count, seeded at the instant of the first period
    assert decide(cfg, 2, 10.0, 10.0, history, 1, 10).desired == 4  # ceil(2 x 2.0), not held by the seeded 2
    history = Stabilizer()
    history.add(10.0, 4, 0.0)
    assert decide(cfg, 4, 2.5, 10.0, history, 1, 10).desired == 2  # ceil(4 x 0.5)
