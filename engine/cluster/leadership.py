"""Whether this engine is the leader now, and under which fencing term.

The leader is the engine holding a session-level advisory lock (`pg_try_advisory_lock(LOCK_KEY)`) on its
membership connection: PostgreSQL frees it when that connection or the engine's process dies, so no lease row
needs expiring. Each heartbeat confirms the lock (our backend's row in `pg_locks`; never locked again, which would
stack the lock) and writes `cluster_leader.confirmed_at = now()`.

Timing, so that a leader that lost its connection stops acting before another can start:

- Let `s` be the moment (this process' monotonic clock) a heartbeat that confirmed the lock was *sent*. The lock
  was held when the server ran it, which is after `s`, and the server wrote `confirmed_at` then.
- `is_leader` is true only until `s + lease/2`. Without a newer confirmation (the connection gone, the database
  unreachable or a heartbeat slower than its statement timeout) the engine stops acting by then, whatever the
  server does meanwhile.
- Another engine may take the lock as soon as PostgreSQL frees it, which can be right after that confirmation.
  So a new leader does not act at once: in the transaction that takes the lock it reads the previous
  `confirmed_at` and the database's `now()`, and starts acting only `confirmed_at + lease/2 - now()` after the
  answer arrived (measured on its own monotonic clock from when the answer arrived, which is after that `now()`).
  The old leader's deadline `s + lease/2` is before `confirmed_at + lease/2`, because `s` came before the server
  ran the statement: the old leader has stopped before the new one starts. Both intervals are measured on
  monotonic clocks of one machine's rate; only the database's clock compares two engines' moments, so skewed
  wall clocks do not matter.
- An engine that lost its connection while leading waits a whole lease before it contends again: the others get
  the lock first, instead of the same engine winning it back the moment it reconnects.
- A clean stop clears `confirmed_at`, so the next leader need not wait; so does a leader that takes the lock back
  after its own term (no other engine acted in between).

One exception keeps a lone engine's alerts going through an outage of the database, when only the alerts of an
engine that reaches nothing can say the database is gone: a leader that was the only live engine at its last
confirmation and then lost its connection keeps `leads_through_outage` until a heartbeat succeeds again. Only
alert evaluation (from memory) uses it; the other singleton jobs need the database anyway. Its limit: an engine
started during the outage that does reach the database (a partition between one engine and the database) leads
too, and alerts are evaluated on both until the first one reaches the database again.

The fencing term (`cluster_leader.term`, a bigint) is incremented by each new leader in the same transaction that
takes the lock; `Leadership.term` is the term while leading, for writes that must be fenced with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["LOCK_KEY", "Leadership"]

LOCK_KEY = 727020  # the leader's advisory lock (the migrations' own lock is 727001)


class Leadership:
    """This engine's view of its leadership: the term it holds and when the lock was last confirmed."""

    def __init__(self, lease_s: float, monotonic: Callable[[], float]) -> None:
        self.lease_s = lease_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._term: int | None = None  # held since an election, until the lock is lost
        self._confirmed: float | None = None  # monotonic time the last confirming heartbeat was sent
        self._acting_from = 0.0  # monotonic time from which a new leader may act (see the module docstring)
        self._lost_at: float | None = None  # monotonic time the lock was lost with the connection
        self._alone = False  # no other engine was live at the last confirmation
        self._offline = False  # the lock went with the connection while leading alone (see the module docstring)

    @property
    def is_leader(self) -> bool:
        """True while the lock was confirmed less than lease/2 ago and the previous leader's time has passed."""
        with self._lock:
            return self._leading(self._monotonic())

    @property
    def term(self) -> int | None:
        """The fencing term while leading; None otherwise."""
        with self._lock:
            return self._term if self._leading(self._monotonic()) else None

    @property
    def leads_through_outage(self) -> bool:
        """is_leader, or this engine led alone when its database connection was lost, until a heartbeat succeeds
        again (alert evaluation from memory goes on through an outage of the database)."""
        with self._lock:
            return self._offline or self._leading(self._monotonic())

    @property
    def held_term(self) -> int | None:
        """The term of the lock this engine holds (leading or about to); None when it holds none."""
        with self._lock:
            return self._term

    def may_contend(self) -> bool:
        """False for a lease after this engine lost the lock with its connection."""
        with self._lock:
            return self._lost_at is None or self._monotonic() - self._lost_at >= self.lease_s

    def elected(self, term: int, sent: float, wait_s: float, *, alone: bool = False) -> None:
        """The lock was taken under this term by a heartbeat sent at `sent`; act after `wait_s` from now. `alone`:
        no other engine was live."""
        with self._lock:
            self._term, self._confirmed, self._alone = term, sent, alone
            self._acting_from = self._monotonic() + max(0.0, wait_s)
            self._lost_at = None

    def confirmed(self, sent: float, *, alone: bool = False) -> None:
        """A heartbeat sent at `sent` found the lock still held; `alone`: no other engine was live."""
        with self._lock:
            if self._term is not None:
                self._confirmed = max(sent, self._confirmed or sent)
                self._alone = alone

    def reached(self) -> None:
        """A heartbeat succeeded: the database answers this engine again."""
        with self._lock:
            self._offline = False

    def lost(self, *, connection: bool) -> None:
        """The lock is no longer held; with `connection`, it went with the connection: with other engines live, wait
        a lease to contend; alone, lead through the outage."""
        with self._lock:
            if self._term is not None and connection:
                if self._alone:
                    self._offline = True
                else:
                    self._lost_at = self._monotonic()
            self._term, self._confirmed = None, None

    def _leading(self, now: float) -> bool:
        return (self._term is not None and self._confirmed is not None and now >= self._acting_from
                and now - self._confirmed < self.lease_s / 2)
