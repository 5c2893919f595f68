"""Background work that needs PostgreSQL while it is gone: say so once, retry quietly, say when it is back.

A job that reads or writes the database itself (recording a simulation's end, replacing a crashed
instance, the autoscaler) catches `UNAVAILABLE` around that work and reports to its DatabaseOutage:
the first failure logs one warning, later ones log nothing, and the first success after them logs
the recovery. An error per tick would fill the writer's bounded buffer (it is logged through it)
and evict the metrics the outage must not lose. Other errors propagate: they are bugs, not outages.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from engine.clock import Clock, SystemClock

__all__ = ["UNAVAILABLE", "DatabaseOutage"]

# connection refused or lost, server shutting down, pool exhausted: wait and try again
UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


class DatabaseOutage:
    """Whether one piece of background work is held up by the database, logged on the transitions only."""

    def __init__(self, what: str, logger: logging.Logger, clock: Clock | None = None, *,
                 retry_s: float = 0.0) -> None:
        self.what = what
        self._log = logger
        self._clock: Clock = clock or SystemClock()
        self.retry_s = retry_s
        self.down = False
        self.failures = 0  # since the outage began
        self._next_try = 0.0

    def due(self) -> bool:
        """False while down and the last try was less than retry_s ago (a tick of 0.25 s need not knock)."""
        return not self.down or self._clock.monotonic() >= self._next_try

    def failed(self, exc: BaseException) -> None:
        """The database refused this work; warn on the first failure only."""
        self._next_try = self._clock.monotonic() + self.retry_s
        self.failures += 1
        if not self.down:
            self.down = True
            self._log.warning("%s waits for the database: %s", self.what, _reason(exc),
                              extra={"meta": {"waiting": self.what}})

    def succeeded(self) -> None:
        """The work reached the database; after an outage, say so once."""
        if self.down:
            self._log.info("%s resumed after %d failed attempt(s)", self.what, self.failures,
                           extra={"meta": {"waiting": self.what, "attempts": self.failures}})
        self.down = False
        self.failures = 0


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc  # the driver's message, not SQLAlchemy's wrapper with its URL hint
    return f"{type(orig).__name__}: {str(orig).splitlines()[0] if str(orig) else ''}"[:200]
