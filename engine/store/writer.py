"""One bounded batch writer for every row the engine emits (metrics, logs, samples, health, breakers).

Events queue in memory and are written every `flush_interval`, or as soon as `batch_size` are
waiting, in one transaction per batch (COPY for the append-only tables: db.ingest). While the
database is down the buffer holds up to `max_buffer` events, the oldest dropped and counted past
that, and the backlog is written in order when it returns. A batch the database refuses for its
content (not the connection) is retried row-safe; rows still refused are counted as rejected.
Nothing on a hot path waits for PostgreSQL.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from contract.events import Event
from db.ingest import Rejected, is_connection_error, write_batch
from engine.clock import Clock
from engine.stats import percentile

__all__ = ["BatchWriter", "WriteLatency", "WriterStatus"]

# the writer's own problems go to the console only: logging them to the DB would loop
log = logging.getLogger("engine.store.writer")
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
    rejected: int
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
        batch_size: int = 10_000,
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
        self._rejected = 0
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
        buffer = self._buffer
        if len(buffer) >= self._max:
            with self._lock:
                if len(buffer) >= self._max:
                    buffer.popleft()
                    self._dropped += 1
        # deque appends and pops are atomic: the hot path takes no lock (a submit per routed bucket, log, sample)
        buffer.append(event)
        if len(buffer) == self._batch:  # once per batch, not on every submit past it
            self._wake.set()

    def status(self) -> WriterStatus:
        """Counters and database state for /api/health."""
        with self._lock:
            return WriterStatus(
                self._ok, len(self._buffer), self._written, self._dropped, self._rejected, self._last_error,
                self._last_success,
            )

    @property
    def running(self) -> bool:
        """Whether the background flushing thread runs (between start() and stop())."""
        return self._thread is not None

    def start(self) -> None:
        """Start the background flushing thread."""
        self._thread = threading.Thread(target=self._run, name="batch-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what is buffered (bounded by timeout) and stop the thread; what the database could not take is
        counted as dropped and said on the console."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self.flush()
        with self._lock:
            left = len(self._buffer)
            self._buffer.clear()
            self._dropped += left
        if left:
            log.error("stopped with %d event(s) the database did not take; they are lost", left)

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
                rejected = self._write(batch)
            except Exception as exc:
                self._requeue(batch, exc)
                return total
            total += len(batch)
            ended = self._clock.monotonic()
            if self._on_commit is not None:
                self._on_commit(ended - began)
            refused = sum(r.rows for r in rejected)
            for r in rejected:
                log.error("%d row(s) for %s rejected: %s", r.rows, r.table, r.error)
            with self._lock:
                self._latencies.append((ended, (ended - began) * 1000.0))
                self._written += len(batch) - refused
                self._rejected += refused
                if not self._ok:
                    log.warning("database writes resumed")
                self._ok, self._last_error, self._last_success = True, None, self._clock.now()

    def _write(self, batch: list[Event]) -> list[Rejected]:
        try:
            with self._sessions.begin() as session:
                write_batch(session, batch)
            return []
        except Exception as exc:
            if is_connection_error(exc):
                raise
            log.warning("batch of %d refused (%s); writing it row-safe", len(batch), type(exc).__name__)
        with self._sessions.begin() as session:
            return write_batch(session, batch, careful=True)

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


