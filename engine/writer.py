"""One bounded batch writer for every per-event row (logs, metrics, health updates).

Events queue in memory and are written every `flush_interval` in one transaction per batch.
While the database is down the buffer holds up to `max_buffer` events; past that the oldest
are dropped and counted. Nothing on a hot path waits for PostgreSQL.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker

from db.models import (
    BreakerTransitionRow,
    CircuitBreakerRow,
    Instance,
    LoadTest,
    LoadTestSample,
    LogEntry,
    MetricRow,
    Service,
)
from engine.clock import Clock
from engine.events import (
    BreakerEvent,
    Event,
    InstanceHealthEvent,
    LoadTestProgress,
    LoadTestSampleEvent,
    LogEvent,
    MetricEvent,
    ServiceHealthEvent,
)
from engine.traffic import percentile

__all__ = ["BatchWriter", "WriteLatency", "WriterStatus"]

# Core tables: executemany UPDATE ... WHERE id = :iid (the ORM's bulk update wants primary-key dicts)
_INSTANCES = cast(Table, Instance.__table__)
_SERVICES = cast(Table, Service.__table__)
_LOAD_TESTS = cast(Table, LoadTest.__table__)

# the writer's own problems go to the console only: logging them to the DB would loop
log = logging.getLogger("engine.writer")
log.propagate = False
log.addHandler(logging.StreamHandler())


@dataclass(frozen=True)
class WriteLatency:
    """Batches committed in a window and their commit time in ms (None when there were none)."""

    batches: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None


@dataclass(frozen=True)
class WriterStatus:
    """What /api/health says about the write path."""

    database_ok: bool
    pending: int
    written: int
    dropped: int
    last_error: str | None
    last_success: datetime | None


class BatchWriter:
    """Buffers events and writes them in batches from one background thread."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        clock: Clock,
        *,
        flush_interval: float = 0.5,
        max_buffer: int = 10_000,
        batch_size: int = 2_000,
        on_commit: Callable[[float], None] | None = None,
    ) -> None:
        self._sessions = session_factory
        self._clock = clock
        self._interval = flush_interval
        self._max = max_buffer
        self._batch = batch_size
        self._buffer: deque[Event] = deque()
        self._lock = threading.Lock()
        # one flush at a time: a caller's flush() returns only after earlier events are committed
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._written = 0
        self._dropped = 0
        self._ok = True
        self._last_error: str | None = None
        self._last_success: datetime | None = None
        self._latencies: deque[tuple[float, float]] = deque(maxlen=1000)  # (monotonic end, ms) per batch
        self._on_commit = on_commit  # told each committed batch's duration in seconds (Prometheus histogram)

    def write_latency(self, window_s: float = 60.0) -> WriteLatency:
        """How long the batches committed in the last window_s took (the engine's own DB write latency)."""
        since = self._clock.monotonic() - window_s
        with self._lock:
            values = sorted(ms for at, ms in self._latencies if at >= since)
        if not values:
            return WriteLatency(0, None, None, None)
        return WriteLatency(len(values), percentile(values, 50), percentile(values, 95), values[-1])

    def submit(self, event: Event) -> None:
        """Queue one event; never blocks. When full, the oldest event is dropped and counted."""
        with self._lock:
            if len(self._buffer) >= self._max:
                self._buffer.popleft()
                self._dropped += 1
            self._buffer.append(event)

    def status(self) -> WriterStatus:
        """Counters and database state for /api/health."""
        with self._lock:
            return WriterStatus(
                self._ok, len(self._buffer), self._written, self._dropped, self._last_error, self._last_success
            )

    def start(self) -> None:
        """Start the background flushing thread."""
        self._thread = threading.Thread(target=self._run, name="batch-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what is buffered (bounded by timeout) and stop the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self.flush()

    def flush(self) -> int:
        """Write everything buffered now; return how many events were written (0 if the DB failed)."""
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> int:
        total = 0
        while True:
            with self._lock:
                batch = [self._buffer.popleft() for _ in range(min(self._batch, len(self._buffer)))]
            if not batch:
                return total
            began = self._clock.monotonic()
            try:
                with self._sessions.begin() as session:
                    _write(session, batch)
            except Exception as exc:
                self._requeue(batch, exc)
                return total
            total += len(batch)
            ended = self._clock.monotonic()
            if self._on_commit is not None:
                self._on_commit(ended - began)
            with self._lock:
                self._latencies.append((ended, (ended - began) * 1000.0))
                self._written += len(batch)
                if not self._ok:
                    log.warning("database writes resumed")
                self._ok, self._last_error, self._last_success = True, None, self._clock.now()

    def _requeue(self, batch: list[Event], exc: Exception) -> None:
        with self._lock:
            room = self._max - len(self._buffer)
            keep = batch[-room:] if room > 0 else []
            self._dropped += len(batch) - len(keep)
            self._buffer.extendleft(reversed(keep))
            if self._ok:
                log.error("database write failed, buffering: %s", exc)
            self._ok, self._last_error = False, f"{type(exc).__name__}: {exc}"[:500]

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            self.flush()
        self.flush()


def _write(session: Session, batch: list[Event]) -> None:
    logs = [e for e in batch if isinstance(e, LogEvent)]
    metrics = [e for e in batch if isinstance(e, MetricEvent)]
    # only the newest state per instance/service matters
    instances = {e.instance_id: e for e in batch if isinstance(e, InstanceHealthEvent)}
    services = {e.service_id: e for e in batch if isinstance(e, ServiceHealthEvent)}
    if logs:
        session.execute(
            insert(LogEntry),
            [
                {
                    "timestamp": e.timestamp,
                    "level": e.level,
                    "source": e.source,
                    "message": e.message,
                    "metadata_": e.metadata,
                }
                for e in logs
            ],
        )
    if metrics:
        session.execute(insert(MetricRow), [asdict(e) for e in metrics])
    breakers = [e for e in batch if isinstance(e, BreakerEvent)]
    if breakers:
        _write_breakers(session, breakers)
    samples = [e for e in batch if isinstance(e, LoadTestSampleEvent)]
    if samples:
        session.execute(insert(LoadTestSample), [asdict(e) for e in samples])
    progress = {e.load_test_id: e for e in batch if isinstance(e, LoadTestProgress)}
    if progress:
        session.execute(
            update(_LOAD_TESTS).where(_LOAD_TESTS.c.id == bindparam("tid")).values(
                status=bindparam("st"), total_requests=bindparam("tot"), successful_requests=bindparam("okn"),
                failed_requests=bindparam("bad"), dropped_requests=bindparam("drop"), ended_at=bindparam("end"),
                summary=bindparam("sum"),
            ),
            [{"tid": e.load_test_id, "st": e.status, "tot": e.total_requests, "okn": e.successful_requests,
              "bad": e.failed_requests, "drop": e.dropped_requests, "end": e.ended_at, "sum": e.summary}
             for e in progress.values()],
        )
    if instances:
        session.execute(
            update(_INSTANCES)
            .where(_INSTANCES.c.id == bindparam("iid"))
            .values(
                status=bindparam("st"),
                last_health_check=bindparam("at"),
                latency_ms=bindparam("lat"),
                last_error=bindparam("err"),
            ),
            [
                {"iid": e.instance_id, "st": e.status, "at": e.checked_at, "lat": e.latency_ms, "err": e.error}
                for e in instances.values()
            ],
        )
    if services:
        session.execute(
            update(_SERVICES)
            .where(_SERVICES.c.id == bindparam("sid"))
            .values(status=bindparam("st"), last_health_check=bindparam("at")),
            [{"sid": e.service_id, "st": e.status, "at": e.checked_at} for e in services.values()],
        )


def _write_breakers(session: Session, events: list[BreakerEvent]) -> None:
    session.execute(
        insert(BreakerTransitionRow),
        [{"service_name": e.service_name, "from_state": e.from_state, "to_state": e.to_state,
          "reason": e.reason, "at": e.at} for e in events],
    )
    latest = {e.service_name: e for e in events}  # the newest state per breaker
    for e in latest.values():
        stmt = pg_insert(CircuitBreakerRow).values(
            service_name=e.service_name, state=e.to_state, failure_count=e.failure_count,
            last_failure=e.last_failure, updated_at=e.at,
        )
        session.execute(stmt.on_conflict_do_update(
            index_elements=[CircuitBreakerRow.service_name],
            set_={"state": e.to_state, "failure_count": e.failure_count, "last_failure": e.last_failure,
                  "updated_at": e.at},
        ))
