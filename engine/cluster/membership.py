"""This engine's membership row and its heartbeat, on a psycopg connection and a thread of their own.

A busy event loop or a saturated API pool must not delay the heartbeat, so neither is used: one connection, made
with connect, statement and lock timeouts, and one daemon thread that beats every CLUSTER_HEARTBEAT_S. Each beat is
one transaction: the row's heartbeat (the database's `now()`), then the leader's lock confirmed, or taken when
free (engine.cluster.leadership says why and when a leader acts). A failed beat drops the connection (and with it
the lock), is logged once per outage, and the next beat connects again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from engine.cluster.leadership import LOCK_KEY, Leadership
from engine.store.logs import event_logger

__all__ = ["EngineIdentity", "Membership"]

log = event_logger("cluster")
CONNECT_TIMEOUT_S = 2  # libpq's least
APPLICATION_NAME = "microservice-monitor-membership"

_BEAT = """
    INSERT INTO engines (id, name, host, pid, api_url, proxy_url, started_at, heartbeat_at)
    VALUES (%(id)s, %(name)s, %(host)s, %(pid)s, %(api_url)s, %(proxy_url)s, now(), now())
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), api_url = EXCLUDED.api_url,
        proxy_url = EXCLUDED.proxy_url, stopped_at = NULL
"""
_HOLDS = """
    SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                   AND classid = 0 AND objid = %(key)s AND objsubid = 1)
"""
_CONFIRM = """
    UPDATE cluster_leader SET confirmed_at = now() WHERE id = 1 AND engine_id = %(id)s AND term = %(term)s
"""
_PREVIOUS = """
    SELECT EXTRACT(EPOCH FROM now() - confirmed_at)::float8, engine_id FROM cluster_leader WHERE id = 1 FOR UPDATE
"""
_OTHERS = """
    SELECT count(*) FROM engines WHERE id <> %(id)s AND stopped_at IS NULL
        AND heartbeat_at > now() - make_interval(secs => %(lease)s)
"""
_ELECT = """
    INSERT INTO cluster_leader (id, term, engine_id, elected_at, confirmed_at) VALUES (1, 1, %(id)s, now(), now())
    ON CONFLICT (id) DO UPDATE SET term = cluster_leader.term + 1, engine_id = EXCLUDED.engine_id,
        elected_at = now(), confirmed_at = now()
    RETURNING term
"""
_STOP = "UPDATE engines SET heartbeat_at = now(), stopped_at = now() WHERE id = %(id)s"
_STEP_DOWN = "UPDATE cluster_leader SET confirmed_at = NULL WHERE id = 1 AND engine_id = %(id)s AND term = %(term)s"


@dataclass(frozen=True)
class EngineIdentity:
    """What an engine says of itself in its row."""

    id: uuid.UUID
    name: str
    host: str
    pid: int
    api_url: str | None
    proxy_url: str | None = None


class Membership:
    """Register, heartbeat and hold or seek the leader's lock; stop() leaves a clean row behind."""

    def __init__(self, conninfo: str, identity: EngineIdentity, leadership: Leadership, *, heartbeat_s: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.identity = identity
        self.leadership = leadership
        self.heartbeat_s = heartbeat_s
        self._conninfo = conninfo
        self._monotonic = monotonic
        self._conn: psycopg.Connection[Any] | None = None
        self._beat_lock = threading.Lock()  # one beat at a time: the thread's, start()'s, set_proxy_url()'s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False  # in an outage: logged once
        self.beats = 0  # heartbeats that succeeded

    @classmethod
    def for_engine(cls, conninfo: str, api_host: str, api_port: int, *, heartbeat_s: float,
                   lease_s: float) -> Membership:
        """The membership of an engine start on this machine: a new id, named host:API port."""
        host = socket.gethostname()
        identity = EngineIdentity(uuid.uuid4(), f"{host}:{api_port}", host, os.getpid(),
                                  f"http://{api_host}:{api_port}")
        return cls(conninfo, identity, Leadership(lease_s, time.monotonic), heartbeat_s=heartbeat_s)

    @property
    def running(self) -> bool:
        """True between start() and stop() (or abandon())."""
        return self._thread is not None

    def start(self) -> None:
        """Register with one heartbeat now (a lone engine leads when this returns), then beat on a thread."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self.beat()
        self._thread = threading.Thread(target=self._run, name="cluster-heartbeat", daemon=True)
        self._thread.start()

    def set_proxy_url(self, url: str | None) -> None:
        """The traffic listener's address once it listens; written at once."""
        self.identity = dataclasses.replace(self.identity, proxy_url=url)
        if self._thread is not None:
            self.beat()

    def stop(self) -> None:
        """Stop beating, set stopped_at, give up the lead (the next leader need not wait) and disconnect."""
        if not self._halt():
            return
        # a beat stuck on a server that accepts and never answers holds the lock: the stop does not wait for it
        if not self._beat_lock.acquire(timeout=0.5):
            self.leadership.lost(connection=True)
            log.warning("the engine's stop was not recorded in the cluster (a heartbeat is stuck on the database): "
                        "it is gone after the lease")
            return
        try:
            term = self.leadership.held_term
            self.leadership.lost(connection=False)
            conn = self._connection()
            with conn.transaction():
                conn.execute(_STOP, {"id": self.identity.id})
                if term is not None:
                    conn.execute(_STEP_DOWN, {"id": self.identity.id, "term": term})
        except (psycopg.Error, OSError) as exc:
            log.warning("the engine's stop was not recorded in the cluster (%s): it is gone after the lease",
                        _first_line(exc))
        finally:
            self._close()
            self._beat_lock.release()

    def abandon(self) -> None:
        """Stop beating and disconnect without recording a stop: what a crash leaves (the row goes stale)."""
        if self._halt():
            self.leadership.lost(connection=True)
            if self._beat_lock.acquire(timeout=0.5):  # a beat stuck on the database keeps its connection
                try:
                    self._close()
                finally:
                    self._beat_lock.release()

    def beat(self) -> bool:
        """One heartbeat (and the lock confirmed or sought); a connection found dead is replaced once at once."""
        with self._beat_lock:
            for attempt in (1, 2):
                fresh = self._conn is None
                try:
                    self._beat_once()
                except (psycopg.Error, OSError) as exc:
                    self.leadership.lost(connection=True)
                    self._close()
                    if fresh or attempt == 2:
                        self._failed(exc)
                        return False
                    continue  # a kept connection the server ended: the next attempt connects anew
                self.leadership.reached()
                if self._failing:
                    self._failing = False
                    log.info("cluster heartbeat written again")
                self.beats += 1
                return True
        return False

    def _beat_once(self) -> None:
        conn = self._connection()
        me = self.identity
        sent = self._monotonic()  # before the transaction's first statement: its now() is later
        with conn.transaction():
            conn.execute(_BEAT, dataclasses.asdict(me))
            held = _scalar(conn, _HOLDS, {"key": LOCK_KEY})
            term = self.leadership.held_term
            if held and term is not None:
                confirmed = conn.execute(_CONFIRM, {"id": me.id, "term": term}).rowcount == 1
                if confirmed:
                    self.leadership.confirmed(sent, alone=self._alone(conn))
                    return
            elif not held:
                if term is not None:  # held by us at the last beat, not now
                    self.leadership.lost(connection=False)
                if not self.leadership.may_contend() or not _scalar(conn, "SELECT pg_try_advisory_lock(%(key)s)",
                                                                     {"key": LOCK_KEY}):
                    return
            # the lock is ours without a term of ours in the row: a new term
            since_confirmed, previous = conn.execute(_PREVIOUS).fetchone() or (None, None)
            term = int(_scalar(conn, _ELECT, {"id": me.id}))
            alone = self._alone(conn)
        # the previous leader's time is waited out, unless it was this engine (no other acted in between)
        wait = (0.0 if since_confirmed is None or previous == me.id
                else self.leadership.lease_s / 2 - float(since_confirmed))
        self.leadership.elected(term, sent, wait, alone=alone)
        log.info("this engine leads the cluster under term %d%s", term,
                 f", acting in {wait:.2f} s (the previous leader's time)" if wait > 0 else "")

    def _alone(self, conn: psycopg.Connection[Any]) -> bool:
        return not _scalar(conn, _OTHERS, {"id": self.identity.id, "lease": self.leadership.lease_s})

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            timeout_ms = max(100, int(self.leadership.lease_s / 2 * 1000))
            self._conn = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                application_name=APPLICATION_NAME, keepalives=1, keepalives_idle=5, keepalives_interval=2,
                keepalives_count=3, tcp_user_timeout=10_000,
                # a beat slower than lease/2 is useless to the leader anyway
                options=f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms} "
                        f"-c idle_in_transaction_session_timeout={4 * timeout_ms} -c jit=off")
        return self._conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):  # closing a broken connection: nothing more to do
                conn.close()

    def _failed(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            log.warning("cluster heartbeat failed (%s); retried every %g s, this engine does not lead meanwhile",
                        _first_line(exc), self.heartbeat_s)

    def _halt(self) -> bool:
        thread, self._thread = self._thread, None
        if thread is None:
            return False
        self._stopping.set()
        # a beat ends within its connect and statement timeouts; one on a server that never answers does not
        thread.join(timeout=CONNECT_TIMEOUT_S + self.leadership.lease_s / 2 + 0.5)
        return True

    def _run(self) -> None:
        due = self._monotonic() + self.heartbeat_s
        while not self._stopping.wait(max(0.0, due - self._monotonic())):
            due = max(due + self.heartbeat_s, self._monotonic())  # a slow beat is not followed by a burst
            try:
                self.beat()
            except Exception:  # a fault of ours, not the database's: the thread must go on beating
                self.leadership.lost(connection=True)
                with contextlib.suppress(Exception):
                    self._close()
                log.exception("cluster heartbeat failed unexpectedly")


def _scalar(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> Any:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
