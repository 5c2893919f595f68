"""Passive outlier ejection (Envoy-style): consecutive 5xx or connection errors eject an instance.

An instance with `consecutive` such errors in a row is ejected for `base_s` x (times ejected
before + 1), so a repeat offender stays out longer; never more than `max_percent` % of a
service's instances are out at once (at least one may always be ejected). Clock injected.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from engine.clock import Clock

__all__ = ["Ejection", "OutlierEjector"]


@dataclass(frozen=True)
class Ejection:
    """An instance taken out of rotation until `until` (monotonic seconds)."""

    instance_id: int
    service: str
    until: float
    times: int


class OutlierEjector:
    """Counts consecutive errors per instance and ejects within the per-service cap."""

    def __init__(self, clock: Clock, consecutive: int = 5, base_s: float = 30.0, max_percent: float = 50.0) -> None:
        self._clock = clock
        self.consecutive = consecutive
        self.base_s = base_s
        self.max_percent = max_percent
        self._lock = threading.Lock()
        self._errors: dict[int, int] = {}
        self._times: dict[int, int] = {}
        self._ejected: dict[int, Ejection] = {}
        self.held = self._ejected  # the ejections held (some maybe ended), by instance id: read only, outside

    @property
    def any_ejected(self) -> bool:
        """Whether any ejection is held (possibly one whose time is up): when not, is_ejected() is False for all."""
        return bool(self._ejected)

    def is_ejected(self, instance_id: int) -> bool:
        """Out of rotation now? (An ejection whose time is up ends here.)"""
        if instance_id not in self._ejected:  # the common case, without the lock
            return False
        with self._lock:
            e = self._ejected.get(instance_id)
            if e is not None and self._clock.monotonic() >= e.until:
                del self._ejected[instance_id]
                self._errors[instance_id] = 0
                return False
            return e is not None

    def observe(self, service: str, instance_id: int, error: bool, service_size: int) -> Ejection | None:
        """Record one answer (error = 5xx or connection failure); return an ejection if this one caused it."""
        if not error:
            if self._errors.get(instance_id):
                self._errors[instance_id] = 0
            return None
        with self._lock:
            count = self._errors.get(instance_id, 0) + 1
            self._errors[instance_id] = count
            if count < self.consecutive or instance_id in self._ejected:
                return None
            now = self._clock.monotonic()
            out = sum(1 for e in self._ejected.values() if e.service == service and e.until > now)
            if out >= max(1, int(service_size * self.max_percent / 100.0)):
                return None
            times = self._times.get(instance_id, 0) + 1
            self._times[instance_id] = times
            ejection = Ejection(instance_id, service, now + self.base_s * times, times)
            self._ejected[instance_id] = ejection
            return ejection

    def ejected(self) -> list[Ejection]:
        """Ejections in force."""
        now = self._clock.monotonic()
        with self._lock:
            return [e for e in self._ejected.values() if e.until > now]
