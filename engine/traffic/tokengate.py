"""Bearer tokens on the event loop: each token verified once and cached, revocation checked without blocking."""

from __future__ import annotations

import asyncio

from contract.errors import Unauthorized
from contract.roles import Role
from engine.clock import Clock
from engine.security.revocation import TokenVersions
from engine.security.tokens import Claims, TokenIssuer

__all__ = ["TokenGate"]


class TokenGate:
    """Operator bearer tokens: each verified once (signature, claims) and kept until it expires, at most max_tokens
    of them; its user's version and role come from TokenVersions (REVOCATION_TTL_S old at most), whose cache is read
    on the loop and whose database read runs in the default executor, one read per user at a time."""

    def __init__(self, issuer: TokenIssuer, versions: TokenVersions, clock: Clock, max_tokens: int = 10_000) -> None:
        self._issuer = issuer
        self._versions = versions
        self._clock = clock
        self._max_tokens = max_tokens
        self._verified: dict[str, Claims] = {}
        self._reads: dict[str, asyncio.Future[tuple[int, Role] | None]] = {}
        # Authorization value -> (claims, rate-limit bucket, revocation epoch, fresh until): see admitted()
        self._admitted: dict[bytes, tuple[Claims, str, int, float]] = {}

    def verify(self, token: str) -> Claims:
        """The token's claims (Unauthorized when invalid or expired); never touches the database."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._issuer.verify(token)
            if len(self._verified) >= self._max_tokens:
                del self._verified[next(iter(self._verified))]  # the oldest verified goes first
            self._verified[token] = claims
        elif claims.expires_at <= self._clock.now():
            del self._verified[token]
            raise Unauthorized("token expired")
        return claims

    def admitted(self, auth: bytes) -> str | None:
        """The rate-limit bucket known_current() was given for this Authorization value while its verdict still holds
        (an operator token, not expired, its user's version read within the revocation TTL and nothing forgotten
        since); None: decide by verify() and known_current()."""
        entry = self._admitted.get(auth)
        if entry is None:
            return None
        claims, bucket, epoch, until = entry
        if epoch == self._versions.epoch and self._clock.monotonic() < until and self._clock.now() < claims.expires_at:
            return bucket
        del self._admitted[auth]
        return None

    def known_current(self, claims: Claims, auth: bytes | None = None, bucket: str | None = None) -> bool:
        """True when the token is current by what is cached, Unauthorized when it is revoked by it, False when the
        database must be read (current()). A current operator token's verdict is kept for admitted() under auth
        (the Authorization value it came in) with its bucket, for as long as the read it rests on holds."""
        versions = self._versions
        epoch = versions.epoch  # before the read: a forget() meanwhile voids the verdict
        held = versions.cached_until(claims.username)
        if held is None:
            return False
        current, until = held
        TokenVersions.judge(claims, current)
        if auth is not None and bucket is not None and claims.role >= Role.OPERATOR:
            if len(self._admitted) >= self._max_tokens:
                self._admitted.clear()
            self._admitted[auth] = (claims, bucket, epoch, until)
        return True

    async def current(self, claims: Claims) -> None:
        """Nothing when the token is current; Unauthorized when revoked, Unavailable when it cannot be told."""
        TokenVersions.judge(claims, await self._read(claims.username))

    async def _read(self, username: str) -> tuple[int, Role] | None:
        future = self._reads.get(username)
        if future is None:
            future = asyncio.get_running_loop().run_in_executor(None, self._versions.current, username)
            self._reads[username] = future
            future.add_done_callback(lambda _: self._reads.pop(username, None))
        return await asyncio.shield(future)
