"""The Kubernetes Horizontal Pod Autoscaler's rule, as a pure function of a service's history and a clock.

desired = ceil(current * value / target), skipped within `tolerance` of 1.0 (default 10 %);
scale-up takes the lowest recommendation of the last `up_window_s` seconds and scale-down the
highest of the last `down_window_s` (the HPA's stabilization windows, so a spike or a dip does not
flap the count); a period moves at most `max_step` instances; the result stays within min..max.
Every call returns a Decision with its reason, including "no change".
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from contract.scaling import METRICS, AutoscalerConfig, ScalingDirection

__all__ = ["Decision", "Stabilizer", "decide"]


@dataclass(frozen=True)
class Decision:
    """What one period decided: the new count (== current for no change) and why."""

    current: int
    desired: int
    raw: int | None  # ceil(current * value / target) before windows, step and bounds; None without a value
    reason: str

    @property
    def direction(self) -> ScalingDirection:
        """Up, down or none."""
        if self.desired > self.current:
            return ScalingDirection.UP
        return ScalingDirection.DOWN if self.desired < self.current else ScalingDirection.NONE


class Stabilizer:
    """Recent recommendations of one service, for the stabilization windows."""

    def __init__(self) -> None:
        self._history: deque[tuple[float, int]] = deque()

    def add(self, now: float, recommendation: int, keep_s: float) -> None:
        """Remember a recommendation; forget what is older than keep_s."""
        self._history.append((now, recommendation))
        while self._history and self._history[0][0] < now - keep_s:
            self._history.popleft()

    def lowest(self, now: float, window_s: float) -> int:
        """The lowest recommendation within the window (the newest when the window is 0)."""
        if window_s <= 0:  # also when an earlier one was added at this same instant (a fresh start's count)
            return self._history[-1][1]
        return min(r for t, r in self._history if t >= now - window_s)

    def highest(self, now: float, window_s: float) -> int:
        """The highest recommendation within the window (the newest when the window is 0)."""
        if window_s <= 0:
            return self._history[-1][1]
        return max(r for t, r in self._history if t >= now - window_s)


def decide(
    config: AutoscalerConfig,
    current: int,
    value: float | None,
    now: float,
    history: Stabilizer,
    minimum: int,
    maximum: int,
) -> Decision:
    """One autoscaler period for one service."""
    name = METRICS[config.metric]
    if current < 1:
        return Decision(current, max(minimum, 1), None, f"no instance: start {max(minimum, 1)}")
    if value is None:
        return Decision(current, current, None, f"no change: {name} not measured")
    ratio = value / config.target
    if abs(ratio - 1.0) <= config.tolerance:
        history.add(now, current, max(config.up_window_s, config.down_window_s))
        return Decision(current, current, current,
                        f"no change: {name} {value:.3g} is within {config.tolerance:.0%} of the target "
                        f"{config.target:g}")
    raw = math.ceil(current * ratio - 1e-9)
    history.add(now, raw, max(config.up_window_s, config.down_window_s))
    if raw > current:
        desired = min(history.lowest(now, config.up_window_s), current + config.max_step)
        why = f"{name} {value:.3g} vs target {config.target:g}: ceil({current} x {ratio:.2f}) = {raw}"
        if desired <= current:
            return Decision(current, current, raw, f"no change: {why}, held by the {config.up_window_s:g} s "
                                                   "scale-up window")
    else:
        desired = max(history.highest(now, config.down_window_s), current - config.max_step)
        why = f"{name} {value:.3g} vs target {config.target:g}: ceil({current} x {ratio:.2f}) = {raw}"
        if desired >= current:
            return Decision(current, current, raw, f"no change: {why}, held by the {config.down_window_s:g} s "
                                                   "scale-down window")
    bounded = max(minimum, min(maximum, desired))
    if bounded == current:
        limit = "max" if raw > current else "min"
        return Decision(current, current, raw, f"no change: {why}, at the {limit} of {bounded}")
    note = "" if bounded == desired else f" (limited to {'max' if bounded < desired else 'min'} {bounded})"
    step = "" if desired == raw else f" (stabilized / max step: {desired})"
    return Decision(current, bounded, raw, f"{why}{step}{note}")
