"""Service level objectives: live counters of routed requests for services with an SLO, burn rates from them, and
the SLIs and error budget over the SLO's window of days.

Each such service has a ring of short slots (10 s over 24 h by default: the longest window a rule may have) of
requests, errors and slow requests, fed by the traffic recorder's listener: a burn rate over any window up to
the ring's length is a sum over its last slots. Closed minutes go to `slo_minutes` through the batch writer, so
the SLIs over days come from the database (plus the minute still open in memory) and survive a restart.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from contract.events import SloMinuteEvent
from contract.incidents import SloOut
from db import slos as queries
from db.alerting_models import SloRow
from engine.clock import Clock
from engine.store.logs import event_logger
from engine.store.outage import UNAVAILABLE, DatabaseOutage
from engine.store.writer import BatchWriter

__all__ = ["BURN_WINDOWS", "SloBook", "SloTarget", "budget_remaining", "burn"]

# the windows SloOut shows burn rates over (the multiwindow, multi-burn-rate alerts' long and short windows)
BURN_WINDOWS: dict[str, float] = {"5m": 300.0, "30m": 1800.0, "1h": 3600.0, "6h": 21600.0}
KEEP = timedelta(days=91)  # slo_minutes outlive the longest window an SLO may have (90 days)


@dataclass(frozen=True)
class SloTarget:
    """A service's SLO as the engine counts it."""

    service: str
    availability_target: float  # percent
    latency_threshold_ms: float | None
    latency_target: float | None  # percent
    window_days: int

    @classmethod
    def of_row(cls, service: str, row: SloRow) -> SloTarget:
        """The SLO a stored row describes."""
        return cls(service, row.availability_target, row.latency_threshold_ms, row.latency_target, row.window_days)


def burn(requests: int, errors: int, availability_target: float) -> float | None:
    """How fast the error budget burns: the failed fraction over the allowed one (1 = exactly on budget)."""
    if requests <= 0:
        return None
    return (errors / requests) / (1.0 - availability_target / 100.0)


def budget_remaining(requests: int, errors: int, availability_target: float) -> float | None:
    """Share of the error budget left: 1 untouched, 0 spent, below 0 overspent; None without traffic."""
    rate = burn(requests, errors, availability_target)
    return None if rate is None else 1.0 - rate


class _Live:
    """One service's counters: a ring of slots and the minute being counted. Used under the book's lock."""

    __slots__ = ("emitted", "errors", "last", "minute", "minute_counts", "requests", "size", "slow", "target")

    def __init__(self, target: SloTarget, size: int) -> None:
        self.target = target
        self.size = size
        self.requests = [0] * size
        self.errors = [0] * size
        self.slow = [0] * size
        self.last: int | None = None  # the newest slot number counted; positions are slot % size
        self.minute: int | None = None  # the minute (epoch // 60) being counted
        self.minute_counts = [0, 0, 0]
        self.emitted = 0  # minutes handed to the writer so far

    def advance(self, slot: int) -> int:
        """Move the ring to `slot`, emptying the slots passed over; a clock that went back counts in the newest."""
        last = self.last
        if last is None:
            self.last = slot
            return slot
        if slot <= last:
            return last
        for s in range(last + 1, min(slot, last + self.size) + 1):
            p = s % self.size
            self.requests[p] = self.errors[p] = self.slow[p] = 0
        self.last = slot
        return slot

    def sums(self, slot: int, slots: int) -> tuple[int, int]:
        """Requests and errors of the `slots` slots ending at `slot` (the ring advanced there)."""
        end = self.advance(slot) % self.size + 1
        start = end - slots
        if start >= 0:
            return sum(self.requests[start:end]), sum(self.errors[start:end])
        return (sum(self.requests[start:]) + sum(self.requests[:end]),
                sum(self.errors[start:]) + sum(self.errors[:end]))


class SloBook:
    """The SloSource of the alert evaluator and the traffic recorder's listener: counts routed requests of the
    services with an SLO, gives burn rates, writes closed minutes, and reports SloOut."""

    def __init__(self, writer: BatchWriter, clock: Clock, sessions: sessionmaker[Session], *, slot_s: float = 10.0,
                 span_s: float = 86_400.0) -> None:
        self._writer = writer
        self._clock = clock
        self._sessions = sessions
        self._outage = DatabaseOutage("SLO minutes retention", event_logger("engine"), clock)
        self.slot_s = slot_s
        self.size = max(1, math.ceil(span_s / slot_s))
        self._lock = threading.Lock()  # counting on the loop, reports and changes on API threads
        self._live: dict[str, _Live] = {}

    # -- definitions -----------------------------------------------------------------------

    def load(self, session: Session) -> None:
        """Take the SLO definitions from the database; counters of services that keep an SLO carry on."""
        self.replace([SloTarget.of_row(name, row) for name, row in queries.slo_definitions(session)])

    def replace(self, targets: list[SloTarget]) -> None:
        """Count exactly these services from now on; one that lost its SLO has its open minute written."""
        wanted = {t.service: t for t in targets}
        with self._lock:
            for name in [n for n in self._live if n not in wanted]:
                self._emit(self._live.pop(name))
            for name, target in wanted.items():
                live = self._live.get(name)
                if live is None:
                    self._live[name] = _Live(target, self.size)
                else:
                    live.target = target

    def set(self, target: SloTarget) -> None:
        """Count the service under this SLO (a new latency threshold applies to requests from now on)."""
        with self._lock:
            live = self._live.get(target.service)
            if live is None:
                self._live[target.service] = _Live(target, self.size)
            else:
                live.target = target

    def target(self, service: str) -> SloTarget | None:
        """The SLO the service is counted under, None when it has none."""
        live = self._live.get(service)
        return None if live is None else live.target

    # -- counting (the traffic recorder's listener: on the engine loop, per routed request) --------

    def record(self, service: str, latency_ms: float, ok: bool) -> None:
        """Count one routed request of the service (nothing for a service without an SLO)."""
        live = self._live.get(service)
        if live is None:
            return
        threshold = live.target.latency_threshold_ms
        self._count(live, 1, 0 if ok else 1, int(threshold is not None and latency_ms > threshold))

    def record_successes(self, service: str, latencies_ms: list[float]) -> None:
        """Count successful routed requests of the service: record(service, x, True) for each."""
        live = self._live.get(service)
        if live is None:
            return
        threshold = live.target.latency_threshold_ms
        self._count(live, len(latencies_ms), 0,
                    0 if threshold is None else sum(1 for x in latencies_ms if x > threshold))

    def _count(self, live: _Live, requests: int, errors: int, slow: int) -> None:
        """Add requests that ended now to the current slot and minute."""
        t = self._clock.now().timestamp()
        with self._lock:
            p = live.advance(int(t // self.slot_s)) % self.size
            live.requests[p] += requests
            minute = int(t // 60)
            if live.minute is None:
                live.minute = minute
            elif minute > live.minute:
                self._emit(live)
                live.minute = minute
            counts = live.minute_counts
            counts[0] += requests
            if errors:
                live.errors[p] += errors
                counts[1] += errors
            if slow:
                live.slow[p] += slow
                counts[2] += slow

    def _emit(self, live: _Live) -> None:
        """Queue the minute being counted for slo_minutes (under the lock; the writer only appends)."""
        requests, errors, slow = live.minute_counts
        if live.minute is not None and requests:
            at = datetime.fromtimestamp(live.minute * 60, UTC)
            self._writer.submit(SloMinuteEvent(live.target.service, at, requests, errors, slow))
            live.emitted += 1
        live.minute, live.minute_counts = None, [0, 0, 0]

    def close_minutes(self) -> None:
        """Write every minute that has ended (a job: a quiet service's last minute is not held back)."""
        now_minute = int(self._clock.now().timestamp() // 60)
        with self._lock:
            for live in self._live.values():
                if live.minute is not None and live.minute < now_minute:
                    self._emit(live)

    def close_all(self) -> None:
        """Write every minute being counted, ended or not (at stop: a restart adds to the same rows)."""
        with self._lock:
            for live in self._live.values():
                self._emit(live)

    def trim_scheduled(self) -> int | None:
        """Delete the minutes older than KEEP (a job); None while the database is away (the next run catches up)."""
        try:
            with self._sessions.begin() as session:
                deleted = queries.delete_minutes_before(session, self._clock.now() - KEEP)
        except UNAVAILABLE as exc:
            self._outage.failed(exc)
            return None
        self._outage.succeeded()
        return deleted

    # -- reading ----------------------------------------------------------------------------

    def burn_rate(self, service: str, window_s: float) -> float | None:
        """The burn rate over the last window_s, in whole slots with the current one (at least one, at most the
        ring); None when the service has no SLO or no request was routed in the window."""
        live = self._live.get(service)
        if live is None:
            return None
        slots = min(self.size, max(1, math.ceil(window_s / self.slot_s - 1e-9)))
        now_slot = int(self._clock.now().timestamp() // self.slot_s)
        with self._lock:
            requests, errors = live.sums(now_slot, slots)
            target = live.target.availability_target
        return burn(requests, errors, target)

    def _open_minute(self, service: str) -> tuple[int | None, int, int, int, int]:
        """The minute being counted (None: none), its counts, and how many minutes were written before it."""
        with self._lock:
            live = self._live.get(service)
            if live is None:
                return None, 0, 0, 0, -1
            requests, errors, slow = live.minute_counts
            return live.minute, requests, errors, slow, live.emitted

    def _window_totals(self, session: Session, service: str, since: datetime) -> tuple[int, int, int]:
        """Requests, errors and slow ones from `since` on: the database's minutes and the one open in memory."""
        now_minute = int(self._clock.now().timestamp() // 60)
        for _ in range(3):
            minute, requests, errors, slow, emitted = self._open_minute(service)
            # queued minutes go in first: the database then holds every closed minute of this engine
            self._writer.flush()
            stored = queries.minute_totals(session, service, since,
                                           datetime.fromtimestamp((now_minute + 1) * 60, UTC))
            if self._open_minute(service)[4] == emitted:
                # the open minute was not written meanwhile: its row holds only what others (an earlier run,
                # another engine) counted, so the memory's counts add to it
                if minute is None or minute * 60 < since.timestamp():
                    return stored.requests, stored.errors, stored.slow
                return requests + stored.requests, errors + stored.errors, slow + stored.slow
        # a minute closed during each try (a minute apart at least: not in practice); the database's word stands
        return stored.requests, stored.errors, stored.slow

    def report(self, session: Session, target: SloTarget) -> SloOut:
        """The SLO's SLIs and error budget over its window (the database's closed minutes plus the one open in
        memory) and the live burn rates."""
        now = self._clock.now()
        since = datetime.fromtimestamp(int((now - timedelta(days=target.window_days)).timestamp() // 60) * 60, UTC)
        requests, errors, slow = self._window_totals(session, target.service, since)
        has_latency = target.latency_threshold_ms is not None
        return SloOut(
            service=target.service, availabilityTarget=target.availability_target,
            latencyThresholdMs=target.latency_threshold_ms, latencyTarget=target.latency_target,
            windowDays=target.window_days,
            availability=100.0 * (requests - errors) / requests if requests else None,
            latency=100.0 * (requests - slow) / requests if requests and has_latency else None,
            requests=requests,
            errorBudgetRemaining=budget_remaining(requests, errors, target.availability_target),
            burnRates={name: self.burn_rate(target.service, seconds)  # type: ignore[misc]
                       for name, seconds in BURN_WINDOWS.items()},
        )
