"""The notifier: every notice becomes one delivery per channel, sent by that channel's own worker and retried.

Each channel has a lane: its waiting deliveries (at most `queue` of them; past that the oldest waiting one is
failed as dropped and counted) and one asyncio task on the engine loop that sends them one at a time, each attempt
bounded by `timeout`. A slow or dead channel holds up only its own lane. A failed attempt waits `backoff`, then
twice that, … (at most `backoff_max`) until `max_attempts`; then the delivery is failed. Every change of a
delivery is a DeliveryRecord for the batch writer, so sending goes on, and is recorded, while the database is away;
channels are held in memory (loaded at start, reloaded by the API on every change).

On stop an attempt in flight is cancelled and its row says "engine stopped during attempt N"; rows of deliveries
still waiting are left as they were (pending or retrying, with their next attempt's time). At the next start the
unfinished deliveries younger than the retry horizon are queued again with their attempt counts; older ones are
failed. A delivery is sent at least once, not exactly once: a cancelled attempt may have arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy.orm import Session

from contract.errors import DeliveryFailed
from contract.notifications import SECRET_MASK, DeliveryEvent, DeliveryStatus
from db import channels as queries
from engine.alerting.channels import CHANNELS, Outbound
from engine.alerting.delivery import ChannelSpec, Delivery, NotifyPolicy
from engine.alerting.model import Notice
from engine.alerting.render import Links, Message
from engine.clock import Clock
from engine.security.ssrf import GuardedConnector, Policy
from engine.store.logs import event_logger
from engine.store.writer import BatchWriter

__all__ = ["ChannelNotifier", "LaneStats"]

log = event_logger("notify")
NAP_S = 1.0  # a worker waiting for a retry looks at the clock at least this often (an injected clock may jump)
MAX_ERROR = 500


@dataclass(frozen=True)
class LaneStats:
    """One channel's lane: deliveries waiting, the one being sent, and counts since the engine started."""

    waiting: int
    sending: int
    delivered: int
    failed: int
    dropped: int


@dataclass
class _Lane:
    """One channel's waiting deliveries (a heap by due time) and its worker."""

    channel_id: int
    heap: list[tuple[datetime, int, Delivery]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    thread: ThreadPoolExecutor | None = None
    in_flight: Delivery | None = None
    delivered: int = 0
    failed: int = 0
    dropped: int = 0


class ChannelNotifier:
    """Implements Notifier: queues each notice per channel without blocking, sends, retries and records."""

    def __init__(self, writer: BatchWriter, clock: Clock, policy: NotifyPolicy, public_url: str,
                 guard: Policy | None = None) -> None:
        self._writer = writer
        self._clock = clock
        self.policy = policy
        self.guard = guard or Policy.channels()  # where a notification may connect
        self._links = Links(public_url.rstrip("/"))
        self._specs: dict[int, ChannelSpec] = {}
        self._lanes: dict[int, _Lane] = {}
        self._lock = threading.Lock()  # lanes are filled from the API's threads and the loop
        self._seq = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: aiohttp.ClientSession | None = None

    # -- channels ---------------------------------------------------------------------------

    def load(self, session: Session) -> None:
        """Hold the stored channels in memory (a channel whose config no longer validates is left out, said)."""
        specs: dict[int, ChannelSpec] = {}
        for row in queries.list_channels(session):
            try:
                specs[row.id] = ChannelSpec.of_row(row)
            except ValueError:
                log.warning("channel %s has a config its type no longer accepts: not used", row.name,
                            extra={"meta": {"channel": row.name, "type": row.type}})
        self._specs = specs  # one assignment: a worker sees the old dict or the new one
        with self._lock:
            gone = [lane for cid, lane in self._lanes.items() if cid not in specs]
        for lane in gone:
            self._poke(lane)  # its worker fails what waits there, then ends

    def channel(self, channel_id: int) -> ChannelSpec | None:
        """The channel held in memory, or None."""
        return self._specs.get(channel_id)

    def stats(self) -> dict[int, LaneStats]:
        """Each lane's waiting deliveries and counts, by channel id."""
        with self._lock:
            return {cid: LaneStats(len(lane.heap), int(lane.in_flight is not None), lane.delivered, lane.failed,
                                   lane.dropped) for cid, lane in self._lanes.items()}

    # -- queueing ---------------------------------------------------------------------------

    def notify(self, notice: Notice) -> None:
        """Queue the notice for each of its channels; never blocks, never raises."""
        try:
            message = Message.of(notice, self._links)
            fingerprint = notice.alert.fingerprint
            for channel_id in dict.fromkeys(notice.channels):
                self._queue(self._new(channel_id, message, fingerprint))
        except Exception:  # the evaluator must go on whatever a notice holds
            log.exception("a notice for %s could not be queued", notice.alert.fingerprint)

    def _new(self, channel_id: int, message: Message, fingerprint: str | None) -> Delivery:
        spec = self._specs.get(channel_id)
        now = self._clock.now()
        if spec is None:
            return Delivery(uuid.uuid4(), channel_id, f"#{channel_id}", None, fingerprint, message.event, {}, now,
                            DeliveryStatus.FAILED, 0, f"no channel {channel_id}")
        payload = CHANNELS[spec.type].render(message, spec.name, spec.config)
        return Delivery(uuid.uuid4(), channel_id, spec.name, spec.type, fingerprint, message.event, payload, now,
                        next_attempt_at=now)

    def _queue(self, d: Delivery) -> None:
        self._writer.submit(d.record())
        if d.status is DeliveryStatus.FAILED:
            self._gave_up(d)
            return
        with self._lock:
            lane = self._lanes.get(d.channel_id)
            if lane is None:
                lane = self._lanes[d.channel_id] = _Lane(d.channel_id)
            dropped = self._make_room(lane)
            heapq.heappush(lane.heap, (d.next_attempt_at or d.created_at, next(self._seq), d))
        if dropped is not None:
            self._writer.submit(dropped.record())
            log.warning("channel %s: %d notification(s) already waiting; dropped the oldest (%s)",
                        dropped.channel_name, self.policy.queue, dropped.id,
                        extra={"meta": {"channel": dropped.channel_name, "delivery": str(dropped.id)}})
        self._poke(lane)

    def _make_room(self, lane: _Lane) -> Delivery | None:
        """With the lock held: when the lane is full, take out its oldest waiting delivery, failed as dropped."""
        if len(lane.heap) < self.policy.queue:
            return None
        oldest = min(lane.heap, key=lambda item: item[2].created_at)
        lane.heap.remove(oldest)
        heapq.heapify(lane.heap)
        lane.dropped += 1
        d = oldest[2]
        d.status, d.next_attempt_at = DeliveryStatus.FAILED, None
        d.last_error = f"dropped: {self.policy.queue} notifications were waiting for this channel (NOTIFY_QUEUE_SIZE)"
        return d

    def _poke(self, lane: _Lane) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # not started (or stopped): start() spawns the workers; the rows say pending meanwhile
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(self._ensure_worker, lane)

    def _ensure_worker(self, lane: _Lane) -> None:
        if self._http is None:
            return  # stopping or stopped
        if lane.task is None or lane.task.done():
            lane.task = asyncio.get_running_loop().create_task(self._work(lane), name=f"notify-{lane.channel_id}")
        lane.wake.set()

    # -- resuming ---------------------------------------------------------------------------

    def resume(self, session: Session) -> tuple[int, int]:
        """Queue the unfinished deliveries younger than the retry horizon; fail older ones. (queued, failed)."""
        now = self._clock.now()
        since = now - timedelta(seconds=self.policy.horizon_s)
        failed = queries.fail_unfinished_before(
            session, since, f"not resumed: older than the retry horizon ({self.policy.horizon_s:g} s) at start")
        queued = 0
        for row in queries.unfinished_deliveries(session, since):
            d = Delivery.of_row(row)
            spec = self._specs.get(d.channel_id)
            if spec is None or d.attempts >= self.policy.max_attempts:
                d.status, d.next_attempt_at = DeliveryStatus.FAILED, None
                d.last_error = "channel deleted" if spec is None else d.last_error
                failed += 1
            else:
                d.channel_type = spec.type
                d.next_attempt_at = max(d.next_attempt_at or now, now)
                queued += 1
            self._queue(d)
        return queued, failed

    # -- running ----------------------------------------------------------------------------

    async def start(self) -> None:
        """On the engine loop: the HTTP session (its resolver refuses link-local and metadata addresses) and a
        worker for every lane with deliveries waiting."""
        self._loop = asyncio.get_running_loop()
        # limit=0: each lane has at most one attempt in flight, so lanes bound the connections
        connector = GuardedConnector(self.guard, limit=0, use_dns_cache=False)
        self._http = aiohttp.ClientSession(connector=connector, trust_env=False)
        with self._lock:
            lanes = list(self._lanes.values())
        for lane in lanes:
            self._ensure_worker(lane)

    async def stop(self) -> None:
        """Cancel every worker (an attempt in flight is recorded as stopped), close the session and threads."""
        http, self._http = self._http, None
        with self._lock:
            lanes = list(self._lanes.values())
        tasks = [lane.task for lane in lanes if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in lanes:
            lane.task = None
            lane.wake = asyncio.Event()  # an event serves one loop: a later start runs another
            if lane.thread is not None:
                lane.thread.shutdown(wait=False, cancel_futures=True)
                lane.thread = None
        if http is not None:
            await http.close()
        self._loop = None

    async def _work(self, lane: _Lane) -> None:
        while True:
            with self._lock:
                due_item = lane.heap[0] if lane.heap else None
                if due_item is None and lane.channel_id not in self._specs:
                    if self._lanes.get(lane.channel_id) is lane:  # the channel was deleted and nothing waits
                        del self._lanes[lane.channel_id]
                    break
            if due_item is None:
                lane.wake.clear()
                await lane.wake.wait()
                continue
            wait = (due_item[0] - self._clock.now()).total_seconds()
            if wait > 0:
                lane.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.wake.wait(), min(wait, NAP_S))
                continue
            with self._lock:
                if not lane.heap or lane.heap[0] is not due_item:
                    continue  # dropped or overtaken meanwhile
                heapq.heappop(lane.heap)
                lane.in_flight = due_item[2]
            try:
                await self._attempt(lane, due_item[2])
            finally:
                lane.in_flight = None
        if lane.thread is not None:
            lane.thread.shutdown(wait=False)

    def _outbound(self, lane: _Lane) -> Outbound:
        if lane.thread is None:
            lane.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"notify-{lane.channel_id}")
        assert self._http is not None
        return Outbound(self._http, self.policy.timeout, lane.thread, self.guard)

    async def _send(self, lane: _Lane, d: Delivery) -> tuple[str | None, bool]:
        """One attempt: (None, _) when it arrived, else (why not, with no secret in it; whether a retry could
        help)."""
        spec = self._specs.get(d.channel_id)
        if spec is None:
            return "channel deleted", False
        if d.channel_type is not None and d.channel_type is not spec.type:
            return f"channel type changed from {d.channel_type.value} to {spec.type.value}", False
        channel = CHANNELS[spec.type]
        try:
            await asyncio.wait_for(channel.send(spec.config, d.payload, self._outbound(lane)), self.policy.timeout)
            return None, True
        except TimeoutError:
            error = f"timed out after {self.policy.timeout:g} s"
        except DeliveryFailed as exc:
            error = str(exc)
        except (OSError, aiohttp.ClientError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a channel's bug fails the attempt, never the lane
            error = f"{type(exc).__name__}: {exc}"
            log.warning("channel %s: unexpected %s during a send", spec.name, type(exc).__name__)
        for secret in sorted(channel.secrets(spec.config), key=len, reverse=True):
            error = error.replace(secret, SECRET_MASK)
        return error[:MAX_ERROR], True

    async def _attempt(self, lane: _Lane, d: Delivery) -> None:
        d.attempts += 1
        d.next_attempt_at = None
        try:
            error, retry = await self._send(lane, d)
        except asyncio.CancelledError:
            last = d.attempts >= self.policy.max_attempts
            d.status = DeliveryStatus.FAILED if last else DeliveryStatus.RETRYING
            d.last_error = f"engine stopped during attempt {d.attempts}"
            d.next_attempt_at = None if last else self._clock.now()
            self._writer.submit(d.record())
            raise
        now = self._clock.now()
        if error is None:
            d.status, d.delivered_at = DeliveryStatus.DELIVERED, now
            lane.delivered += 1
            self._writer.submit(d.record())
            return
        d.last_error = error
        if d.attempts >= self.policy.max_attempts or not retry:
            d.status = DeliveryStatus.FAILED
            self._writer.submit(d.record())
            self._gave_up(d)
            return
        d.status = DeliveryStatus.RETRYING
        d.next_attempt_at = now + timedelta(seconds=self.policy.delay(d.attempts))
        self._writer.submit(d.record())
        with self._lock:
            heapq.heappush(lane.heap, (d.next_attempt_at, next(self._seq), d))

    def _gave_up(self, d: Delivery) -> None:
        with self._lock:
            lane = self._lanes.get(d.channel_id)
            if lane is not None:
                lane.failed += 1
        log.warning("notification to channel %s failed after %d attempt(s): %s", d.channel_name, d.attempts,
                    d.last_error, extra={"meta": {"channel": d.channel_name, "delivery": str(d.id),
                                                  "event": d.event.value, "attempts": d.attempts}})

    # -- a test send ------------------------------------------------------------------------

    async def test(self, channel_id: int) -> Delivery:
        """On the engine loop: one attempt now to the channel (no retry), recorded; the delivery as it ended."""
        spec = self._specs.get(channel_id)
        if spec is None:
            raise LookupError(channel_id)
        now = self._clock.now()
        message = Message.test(spec.id, spec.name, now, self._links)
        d = Delivery(uuid.uuid4(), spec.id, spec.name, spec.type, None, DeliveryEvent.TEST,
                     CHANNELS[spec.type].render(message, spec.name, spec.config), now)
        self._writer.submit(d.record())
        with self._lock:
            lane = self._lanes.get(channel_id)
            if lane is None:
                lane = self._lanes[channel_id] = _Lane(channel_id)
        d.attempts = 1
        try:
            error, _ = await self._send(lane, d)
        except asyncio.CancelledError:
            d.status, d.last_error = DeliveryStatus.FAILED, "cancelled before the attempt ended"
            self._writer.submit(d.record())
            raise
        if error is None:
            d.status, d.delivered_at = DeliveryStatus.DELIVERED, self._clock.now()
        else:
            d.status, d.last_error = DeliveryStatus.FAILED, error
        self._writer.submit(d.record())
        return replace(d)

