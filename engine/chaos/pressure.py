"""Real resource pressure for failure simulation: memory the engine really holds, queries PostgreSQL really runs.

MemoryLeak allocates (and touches) 1 MB blocks at a rate up to a hard cap, in a thread, and frees
them all on stop. DatabaseOverload keeps a bounded number of connections busy with CPU-heavy
statements and, at high intensity, one connection holding a lock the engine's own writes need
(SHARE on `logs`, in short bursts) until stop, which cancels what is running and closes them.
Both are bounded in time by their caller (the chaos manager ends them) and in size here.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import psycopg

from contract.chaos import INTENSITY_PRESSURE, Intensity
from engine.clock import Clock, SystemClock
from engine.store.logs import event_logger

__all__ = ["CONNECT_TIMEOUT_S", "OVERLOAD_APP_NAME", "DatabaseOverload", "MemoryLeak"]

log = event_logger("chaos")
MB = 1 << 20
OVERLOAD_APP_NAME = "mm-chaos-overload"
# a server that accepts and never answers fails a start in this many seconds (libpq's least is 2)
CONNECT_TIMEOUT_S = 3
# intensity -> (busy connections, whether one of them holds a lock the writer needs)
_CPU_STATEMENT = "SELECT count(*) FROM generate_series(1, 2000000) AS g WHERE sqrt(g::float8) > 1"
_LOCK_STATEMENTS = ("LOCK TABLE logs IN SHARE MODE", "SELECT pg_sleep(0.4)")


class MemoryLeak:
    """Holds `rate_mb_s` more MB every second, up to `cap_mb`; stop() frees everything.

    Every `tick_s` the thread allocates what is due: rate x seconds since start on `clock`, at most the cap.
    """

    def __init__(self, rate_mb_s: float, cap_mb: int, tick_s: float = 0.1, clock: Clock | None = None) -> None:
        self.rate_mb_s = rate_mb_s
        self.cap_mb = cap_mb
        self._tick = tick_s
        self._clock = clock or SystemClock()
        self._began = 0.0
        self._blocks: list[bytes] = []
        self._alloc_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-memory", daemon=True)

    @property
    def held_mb(self) -> int:
        """MB allocated now."""
        return len(self._blocks)

    def start(self, began: float | None = None) -> None:
        """Begin allocating, counting from `began` on the clock's monotonic time (now when None)."""
        self._began = self._clock.monotonic() if began is None else began
        self._thread.start()

    def due_mb(self) -> int:
        """MB due by now: rate x seconds since start, at most the cap."""
        return min(self.cap_mb, int(self.rate_mb_s * (self._clock.monotonic() - self._began)))

    def allocate_due(self) -> int:
        """Allocate (and touch) the blocks due by now; the MB held after."""
        with self._alloc_lock:
            due = self.due_mb()
            while len(self._blocks) < due and not self._stop.is_set():
                self._blocks.append(b"\xa5" * MB)  # written, so the pages are resident (RSS), not just reserved
            return len(self._blocks)

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            self.allocate_due()

    def stop(self) -> None:
        """Stop allocating and free every block."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)
        self._blocks.clear()


class DatabaseOverload:
    """Busy PostgreSQL connections until stop(); each connect by CONNECT_TIMEOUT_S, each statement by
    statement_timeout."""

    def __init__(self, conninfo: str, intensity: Intensity, on_error: Callable[[str], None] | None = None,
                 tag: str = "") -> None:
        self.connections, self.locks = INTENSITY_PRESSURE[Intensity(intensity)]
        self.app_name = f"{OVERLOAD_APP_NAME}{tag}"
        self._conninfo = conninfo
        self._stop = threading.Event()
        self._conns: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._on_error = on_error
        self.statements = 0

    def start(self) -> None:
        """Open the connections and start their loops (raises if the database refuses)."""
        for n in range(self.connections):
            conn = psycopg.connect(self._conninfo, autocommit=True, application_name=self.app_name,
                                   connect_timeout=CONNECT_TIMEOUT_S, options="-c statement_timeout=5000")
            with self._lock:
                self._conns.append(conn)
            holds_lock = self.locks and n == 0
            thread = threading.Thread(target=self._loop, args=(conn, holds_lock), name=f"chaos-db-{n}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _loop(self, conn: psycopg.Connection, holds_lock: bool) -> None:
        try:
            while not self._stop.is_set():
                if holds_lock:
                    with conn.transaction():
                        for statement in _LOCK_STATEMENTS:
                            conn.execute(statement)
                    self._stop.wait(0.2)
                else:
                    conn.execute(_CPU_STATEMENT).fetchone()
                self.statements += 1
        except psycopg.Error as exc:
            if not self._stop.is_set() and self._on_error is not None:
                self._on_error(f"{type(exc).__name__}: {exc}"[:200])

    def stop(self, timeout_s: float = 0.8) -> None:
        """Cancel running statements, close the connections, and make sure no backend of ours is left.

        A statement that started just after the cancel was sent would run on: the last step terminates
        whatever backend still carries this overload's application_name.
        """
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(psycopg.Error, OSError):
                conn.cancel_safe(timeout=0.2)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic() - 0.3))
        for conn in conns:
            conn.close()
        self._terminate_leftovers(deadline)

    def _terminate_leftovers(self, deadline: float) -> None:
        try:
            with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                 options="-c statement_timeout=2000") as admin:
                while True:
                    left = admin.execute(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                        (self.app_name,),
                    ).fetchone()
                    if not left or not left[0] or time.monotonic() > deadline:
                        return
                    time.sleep(0.02)
        except psycopg.Error as exc:
            log.warning("database overload: could not check for leftover statements: %s", exc)
