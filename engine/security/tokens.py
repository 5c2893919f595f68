"""JWT bearer tokens (HS256) with an injected clock; each carries its user's token version (`ver`), which the API
compares with the database's (engine.security.revocation)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from contract.errors import Unauthorized
from contract.roles import Role
from engine.clock import Clock

__all__ = ["Claims", "TokenIssuer"]


@dataclass(frozen=True)
class Claims:
    """Who a valid token speaks for."""

    username: str
    role: Role
    expires_at: datetime
    version: int


class TokenIssuer:
    """Issues and verifies tokens; expiry is checked against the injected clock, not time.time()."""

    def __init__(self, secret: str, ttl_seconds: float, clock: Clock) -> None:
        if len(secret) < 32:
            raise ValueError("the JWT secret must be at least 32 characters")
        self._secret = secret
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock

    def issue(self, username: str, role: Role, version: int) -> tuple[str, datetime]:
        """A signed token of the user's current token version, and when it expires."""
        now = self._clock.now()
        expires = now + self._ttl
        claims = {"sub": username, "role": role.label, "ver": version, "iat": int(now.timestamp()),
                  "exp": int(expires.timestamp())}
        return jwt.encode(claims, self._secret, algorithm="HS256"), expires.replace(microsecond=0)

    def verify(self, token: str) -> Claims:
        """The claims of a valid, unexpired token; Unauthorized otherwise (the reason says which)."""
        try:
            data = jwt.decode(
                token, self._secret, algorithms=["HS256"],
                options={"verify_exp": False, "verify_iat": False, "require": ["sub", "role", "exp", "ver"]},
            )
            role = Role.parse(str(data["role"]))
            version = data["ver"]
            if type(version) is not int:
                raise TypeError("ver is not an integer")
            expires = datetime.fromtimestamp(int(data["exp"]), tz=self._clock.now().tzinfo)
        except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError) as exc:
            raise Unauthorized(f"invalid token: {type(exc).__name__}") from None
        if expires <= self._clock.now():
            raise Unauthorized("token expired")
        return Claims(str(data["sub"]), role, expires, version)
