"""The open-model load generator: requests at a fixed or ramping rate, users cap the in-flight ones.

Request k of a run is due at `t0 + k / rate` whatever happened to the ones before it (open model,
like k6's constant-arrival-rate and wrk2); with stages, where the integral of the ramping rate reaches k
(engine.loadtest.schedule, as k6's ramping-arrival-rate). Send(k) sends request k (its number picks the
request spec and the route key). `users` slots send; a request whose slot is not free at
its due time waits in a backlog of at most `backlog` requests and is sent as soon as one frees; when
the backlog is full it is counted as dropped. Each latency is recorded twice: from the due time
(corrected for coordinated omission, as wrk2 does) and from the actual send (uncorrected).

Outcomes are grouped by the second of the run in which they happen (by their own timestamps, so a
late wake of the per-second ticker moves nothing across a boundary) and handed to `on_second` as
Samples; the whole-run histograms are merged from those. A share of a run (`offset`, `stride`) lets several
processes split one schedule: the process with offset i sends requests i, i+stride, i+2*stride, ...
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from engine.loadtest.hdr import Histogram
from engine.loadtest.schedule import Ramp, due_offsets, planned, scheduled_total

__all__ = ["PERCENTILES", "Generator", "Plan", "Sample", "Send", "Tally", "planned"]

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)

Send = Callable[[int], Awaitable[str | None]]
"""Sends request k of the run; returns None on success or a short error kind ("http_503", "timeout", ...)."""


@dataclass(frozen=True)
class Plan:
    """What to generate: rate (requests/s), duration (s), slots, backlog bound, and this process's share.

    With `stages` ((duration s, target req/s) pairs, from `start_rps`) the rate ramps: `rate` is then its peak
    and `duration_s` the stages' sum.
    """

    rate: float
    duration_s: float
    users: int
    backlog: int
    offset: int = 0
    stride: int = 1
    start_rps: float = 0.0
    stages: Ramp = ()

    @property
    def total(self) -> int:
        """Requests the whole schedule holds (all shares)."""
        if self.stages:
            return scheduled_total(self.start_rps, self.stages)
        return math.floor(self.rate * self.duration_s + 1e-9)

    def dues(self) -> Iterator[float]:
        """When each request of this share is due, in seconds from the start."""
        ks = range(self.offset, self.total, self.stride)
        if self.stages:
            return due_offsets(self.start_rps, self.stages, ks)
        return map((1.0 / self.rate).__mul__, ks)

    @property
    def mine(self) -> int:
        """Requests of this share."""
        return len(range(self.offset, self.total, self.stride))


@dataclass
class Tally:
    """Counts and histograms of one second (or of a whole run, merged)."""

    sent: int = 0
    ok: int = 0
    failed: int = 0
    dropped: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    corrected: Histogram = field(default_factory=Histogram)
    uncorrected: Histogram = field(default_factory=Histogram)

    def merge(self, other: Tally) -> None:
        """Add another tally (another second, or another process's share of the same second)."""
        self.sent += other.sent
        self.ok += other.ok
        self.failed += other.failed
        self.dropped += other.dropped
        for kind, n in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        self.corrected.merge(other.corrected)
        self.uncorrected.merge(other.uncorrected)

    def to_wire(self) -> dict[str, object]:
        """A JSON/pickle-friendly form (worker processes send these)."""
        return {"sent": self.sent, "ok": self.ok, "failed": self.failed, "dropped": self.dropped,
                "errors": dict(self.errors), "corrected": self.corrected.to_sparse(),
                "uncorrected": self.uncorrected.to_sparse()}

    @classmethod
    def from_wire(cls, data: dict[str, object]) -> Tally:
        """The inverse of to_wire()."""
        return cls(int(data["sent"]), int(data["ok"]), int(data["failed"]),  # type: ignore[call-overload]
                   int(data["dropped"]), dict(data["errors"]),  # type: ignore[call-overload]
                   Histogram.from_sparse(data["corrected"]),  # type: ignore[arg-type]
                   Histogram.from_sparse(data["uncorrected"]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Sample:
    """One second of a run: second n covers [t0 + n - 1, t0 + n)."""

    second: int
    tally: Tally


class Generator:
    """Runs one Plan on the current asyncio loop."""

    def __init__(
        self,
        plan: Plan,
        send: Send,
        monotonic: Callable[[], float],
        on_second: Callable[[Sample], None],
        *,
        drain_s: float = 10.0,
        stop_grace_s: float = 0.3,
    ) -> None:
        if plan.rate <= 0 or plan.duration_s <= 0 or plan.users < 1 or plan.backlog < 0:
            raise ValueError("rate and duration must be > 0, users >= 1, backlog >= 0")
        self.plan = plan
        self._send = send
        self._now = monotonic
        self._on_second = on_second
        self._drain_s = drain_s
        self._grace_s = stop_grace_s
        self._backlog: deque[tuple[float, int]] = deque()  # (due, request number)
        self._idle: deque[asyncio.Future[tuple[float, int]]] = deque()
        self._stopping = False
        self._seconds: dict[int, Tally] = {}  # outcomes of seconds not emitted yet, by second of the run (1-based)
        self._open = Tally()  # the newest of them, and where it ends: the hot path checks one float
        self._open_ends = -math.inf
        self._last_second = 0
        self.t0 = 0.0
        self.in_flight = 0
        self.dispatched = 0
        self.ended_at: float | None = None

    def stop(self) -> None:
        """End early: no more sends; the backlog is dropped and in-flight requests get a short grace."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        """stop() was called."""
        return self._stopping

    @property
    def backlog(self) -> int:
        """Requests due and waiting for a free slot."""
        return len(self._backlog)

    async def run(self, t0: float | None = None) -> None:
        """Generate until the schedule ends (then wait, bounded, for in-flight requests) or stop()."""
        self.t0 = self._now() if t0 is None else t0
        slots = [asyncio.ensure_future(self._slot()) for _ in range(self.plan.users)]
        ticker = asyncio.ensure_future(self._tick())
        try:
            await self._dispatch()
            await self._finish()
        finally:
            for task in (*slots, ticker):
                task.cancel()
            await asyncio.gather(*slots, ticker, return_exceptions=True)
            self.ended_at = self._now()
            self._emit(final=True)

    async def _dispatch(self) -> None:
        plan, now, t0, offer = self.plan, self._now, self.t0, self._offer
        interval = 1.0 / plan.rate
        ramp = plan.dues() if plan.stages else None  # a constant rate's times are computed inline: the hot path
        t = now()
        n = 0
        for k in range(plan.offset, plan.total, plan.stride):
            at = t0 + (k * interval if ramp is None else next(ramp))
            if at > t:  # not due at the last look: let the slots send this batch, then wait for it
                await asyncio.sleep(0)
                while not self._stopping and (lag := at - now()) > 0:
                    await asyncio.sleep(min(max(lag, 0.001), 0.05))  # ms ticks; a slow schedule notices stop() fast
                if self._stopping:
                    break
                t = now()  # everything due by now goes out in this turn
            offer((at, k))
            n += 1
        await asyncio.sleep(0)  # the slots take the last batch before the drain looks at what is in flight
        self.dispatched = n

    def _offer(self, item: tuple[float, int]) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        if len(self._backlog) < self.plan.backlog:
            self._backlog.append(item)
        else:
            self._at(self._now()).dropped += 1

    async def _slot(self) -> None:
        loop = asyncio.get_running_loop()
        now, send = self._now, self._send
        while True:
            if self._backlog:
                due, k = self._backlog.popleft()
            else:
                waiter: asyncio.Future[tuple[float, int]] = loop.create_future()
                self._idle.append(waiter)
                due, k = await waiter
            started = now()
            self._at(started).sent += 1
            self.in_flight += 1
            try:
                error = await send(k)
            except asyncio.CancelledError:
                self._count(due, started, "cancelled")
                raise
            except Exception as exc:  # a sender must not kill its slot; the kind is the exception's name
                error = type(exc).__name__
            finally:
                self.in_flight -= 1
            self._count(due, started, error)

    def _count(self, due: float, started: float, error: str | None) -> None:
        end = self._now()
        tally = self._at(end)
        tally.corrected.record(int((end - due) * 1e6))
        tally.uncorrected.record(int((end - started) * 1e6))
        if error is None:
            tally.ok += 1
        else:
            tally.failed += 1
            tally.errors[error] = tally.errors.get(error, 0) + 1

    async def _finish(self) -> None:
        deadline = self._now() + (self._grace_s if self._stopping else self._drain_s)
        while (self._backlog or self.in_flight) and self._now() < deadline:
            if self._stopping:
                self._drop_backlog()
                deadline = min(deadline, self._now() + self._grace_s)
            await asyncio.sleep(0.01)
        self._drop_backlog()

    def _drop_backlog(self) -> None:
        """Requests due but never sent (stopped, or still waiting at the drain deadline) count as dropped."""
        self._at(self._now()).dropped += len(self._backlog)
        self._backlog.clear()

    def _at(self, when: float) -> Tally:
        """The tally of the second of the run that `when` falls in (timestamps only move forward)."""
        if when < self._open_ends:
            return self._open
        second = max(self._last_second + 1, math.floor(when - self.t0) + 1)
        self._open = self._seconds.setdefault(second, Tally())
        self._open_ends = self.t0 + second
        return self._open

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self.t0 + self._last_second + 1 - self._now()))
            self._emit()

    def _emit(self, final: bool = False) -> None:
        """Hand over the next second (it has ended); at the end, every second still held, the last partial."""
        last = max(self._seconds, default=0) if final else self._last_second + 1
        while self._last_second < last:
            self._last_second += 1
            tally = self._seconds.pop(self._last_second, None) or Tally()
            if self._open_ends <= self.t0 + self._last_second:
                self._open_ends = -math.inf  # the open tally was this second's: the next event opens a new one
            self._on_second(Sample(self._last_second, tally))
