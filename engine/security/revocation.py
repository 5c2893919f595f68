"""Revocable tokens: a token is good while its user exists with the token's version and role.

Each user's version and role are read from the database and kept for at most `ttl` seconds, so a change made by
another engine on the same database takes effect within `ttl`; a change this process makes is forgotten at once
(`forget`), so it takes effect on the next request. When the database cannot be read, the last value read stands;
with none, the request is refused as unavailable (503).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from contract.errors import Unauthorized, Unavailable
from contract.roles import Role
from db.models import User
from engine.clock import Clock
from engine.security.tokens import Claims

__all__ = ["REVOCATION_TTL_S", "TokenVersions"]

REVOCATION_TTL_S = 1.0  # how stale another engine's revocation may be seen here


@dataclass(frozen=True)
class _Entry:
    """A user's version and role as read (None: no such user), and when (monotonic seconds)."""

    current: tuple[int, Role] | None
    read_at: float


class TokenVersions:
    """Checks verified claims against the database's token version and role of their user, cached per user."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, ttl: float = REVOCATION_TTL_S,
                 max_users: int = 10_000) -> None:
        self._sessions = sessions
        self._clock = clock
        self._ttl = ttl
        self._max_users = max_users
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.epoch = 0  # raised by forget(): a read begun before it must not be cached after it (nor a verdict)
        self._lock = threading.Lock()

    def check(self, claims: Claims) -> None:
        """Nothing if the token is current; Unauthorized if its user is gone or its version or role changed."""
        self.judge(claims, self.current(claims.username))

    @staticmethod
    def judge(claims: Claims, current: tuple[int, Role] | None) -> None:
        """Nothing if current (a user's version and role as read) holds the token's; Unauthorized otherwise."""
        if current is None:
            raise Unauthorized("the token's user no longer exists")
        if current != (claims.version, claims.role):
            raise Unauthorized("token revoked (logged out, or the password or role changed): log in again")

    def cached(self, username: str) -> tuple[bool, tuple[int, Role] | None]:
        """(True, the user's version and role) when a read at most ttl seconds old is held, else (False, None):
        never reads the database, so an event loop may call it (and call current() off the loop on a miss)."""
        now = self._clock.monotonic()
        with self._lock:
            entry = self._entries.get(username)
        if entry is not None and now - entry.read_at < self._ttl:
            return True, entry.current
        return False, None

    def cached_until(self, username: str) -> tuple[tuple[int, Role] | None, float] | None:
        """As cached(): the user's version and role and until when (monotonic seconds) the read holds, or None."""
        now = self._clock.monotonic()
        with self._lock:
            entry = self._entries.get(username)
        if entry is not None and now - entry.read_at < self._ttl:
            return entry.current, entry.read_at + self._ttl
        return None

    def current(self, username: str) -> tuple[int, Role] | None:
        """The user's token version and role (None: no such user), at most ttl seconds old."""
        now = self._clock.monotonic()
        with self._lock:
            entry = self._entries.get(username)
            if entry is not None and now - entry.read_at < self._ttl:
                return entry.current
            epoch = self.epoch
        try:
            with self._sessions() as session:
                row = session.execute(select(User.token_version, User.role).where(User.username == username)).first()
            current = None if row is None else (row.token_version, Role.parse(row.role))
        except SQLAlchemyError:
            if entry is None:
                raise Unavailable("database unavailable: cannot check the token") from None
            current = entry.current  # the last answer stands until the database answers again
        with self._lock:
            if self.epoch == epoch:
                self._entries[username] = _Entry(current, now)
                self._entries.move_to_end(username)
                while len(self._entries) > self._max_users:
                    self._entries.popitem(last=False)
        return current

    def forget(self, username: str) -> None:
        """Drop what is known of the user: the next check reads the database (call after a change commits)."""
        with self._lock:
            self._entries.pop(username, None)
            self.epoch += 1
