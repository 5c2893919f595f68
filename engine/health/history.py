"""What the checker keeps of past checks in memory: the open minute's counts per instance, and a bounded ring
of the latest results per instance for heartbeat bars."""

from __future__ import annotations

import heapq
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from contract.events import CheckRollupEvent
from contract.states import HealthState

__all__ = ["MinuteRollup", "RecentCheck", "RecentChecks", "minute_of"]

MINUTE = timedelta(minutes=1)


def minute_of(at: datetime) -> datetime:
    """The start of the minute holding `at`."""
    return at.replace(second=0, microsecond=0)


class _Counts:
    """One instance's checks in one minute so far."""

    __slots__ = ("checks", "degraded", "down", "latency_max", "latency_n", "latency_sum", "up")

    def __init__(self) -> None:
        self.checks = self.up = self.degraded = self.down = self.latency_n = 0
        self.latency_sum = 0.0
        self.latency_max: float | None = None


class MinuteRollup:
    """Counts checks per (service, instance, minute) until the minute closes; used from the engine loop only."""

    def __init__(self) -> None:
        self._open: dict[tuple[int, int, datetime], _Counts] = {}
        self._oldest: datetime | None = None  # the earliest minute held (closed() scans nothing before it ends)

    def add(self, service_id: int, instance_id: int, at: datetime, state: HealthState,
            latency_ms: float | None) -> None:
        """Count one check result (its raw, undamped state)."""
        minute = minute_of(at)
        key = (service_id, instance_id, minute)
        counts = self._open.get(key)
        if counts is None:
            counts = self._open[key] = _Counts()
            if self._oldest is None or minute < self._oldest:
                self._oldest = minute
        counts.checks += 1
        if state is HealthState.HEALTHY:
            counts.up += 1
        elif state is HealthState.DEGRADED:
            counts.degraded += 1
        else:
            counts.down += 1
        if latency_ms is not None:
            counts.latency_n += 1
            counts.latency_sum += latency_ms
            counts.latency_max = latency_ms if counts.latency_max is None else max(counts.latency_max, latency_ms)

    def closed(self, now: datetime) -> list[CheckRollupEvent]:
        """Rows of every minute that ended at or before now, removed from memory."""
        current = minute_of(now)
        if self._oldest is None or self._oldest >= current:
            return []  # nothing held ended yet: no scan of every instance's counts
        taken = self._take([k for k in self._open if k[2] < current])
        self._oldest = min((k[2] for k in self._open), default=None)
        return taken

    def drain(self) -> list[CheckRollupEvent]:
        """Rows of every minute held, the open one too (at stop: a restart adds the rest of that minute)."""
        self._oldest = None
        return self._take(list(self._open))

    @property
    def pending(self) -> int:
        """(instance, minute) pairs held."""
        return len(self._open)

    def _take(self, keys: list[tuple[int, int, datetime]]) -> list[CheckRollupEvent]:
        out = []
        for key in keys:
            c = self._open.pop(key)
            out.append(CheckRollupEvent(key[0], key[1], key[2], c.checks, c.up, c.degraded, c.down, c.latency_n,
                                        c.latency_sum, c.latency_max))
        return out


@dataclass(frozen=True)
class RecentCheck:
    """One check result as a heartbeat bar shows it."""

    instance_id: int
    at: datetime
    state: HealthState
    latency_ms: float | None
    status_code: int | None
    error: str | None


class RecentChecks:
    """The latest `size` results per instance; written by the engine loop, read by API threads.

    Each result is held as a plain tuple of atomic values (time, state, latency, status, error), which the garbage
    collector stops tracking: a full fleet's rings (10,000 instances x 120 results) add nothing to a collection's
    work, so the loop does not stall on them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._rings: dict[int, deque[tuple[datetime, str, float | None, int | None, str | None]]] = {}
        self._service_of: dict[int, int] = {}

    def add(self, service_id: int, check: RecentCheck) -> None:
        """Keep one result; the oldest of the instance's falls out past `size`."""
        self.record(service_id, check.instance_id, check.at, check.state, check.latency_ms, check.status_code,
                    check.error)

    def record(self, service_id: int, instance_id: int, at: datetime, state: HealthState, latency_ms: float | None,
               status_code: int | None, error: str | None) -> None:
        """Keep one result (as add, without building a RecentCheck)."""
        with self._lock:
            ring = self._rings.get(instance_id)
            if ring is None:
                ring = self._rings[instance_id] = deque(maxlen=self.size)
                self._service_of[instance_id] = service_id
            ring.append((at, state.value, latency_ms, status_code, error))

    def forget(self, instance_id: int) -> None:
        """Drop a removed instance's results."""
        with self._lock:
            self._rings.pop(instance_id, None)
            self._service_of.pop(instance_id, None)

    def latest(self, service_id: int, limit: int) -> list[RecentCheck]:
        """The service's latest results over all its instances, newest first, at most limit."""
        with self._lock:
            rings = [[RecentCheck(iid, at, HealthState(state), latency, status, error)
                      for at, state, latency, status, error in ring]
                     for iid, ring in self._rings.items() if self._service_of.get(iid) == service_id]
        newest_first = heapq.merge(*(reversed(r) for r in rings), key=lambda c: c.at, reverse=True)
        return list(islice(newest_first, limit))
