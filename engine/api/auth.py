"""Who is calling: bearer-token checks, role checks and rate limits, applied before any view runs."""

from __future__ import annotations

from flask import Flask, g, request

from contract.errors import Forbidden, RateLimited, Unauthorized
from contract.roles import Role
from engine.api.context import runtime
from engine.security.tokens import Claims

__all__ = ["authorize", "bearer", "client_key", "install_rate_limit", "login_key"]


def bearer() -> str | None:
    """The request's bearer token, None without one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _claims() -> Claims | None:
    """The verified claims of this request's token (verified once per request), None without a token."""
    if "claims" not in g:
        token = bearer()
        g.claims = None
        g.token_error = None
        if token is not None:
            try:
                g.claims = runtime().tokens.verify(token)
            except Unauthorized as exc:
                g.token_error = exc
    claims: Claims | None = g.claims
    return claims


def authorize(role: Role | None) -> Claims | None:
    """Public when role is None; else a valid token of at least that role (401 / 403 otherwise)."""
    if role is None:
        return None
    claims = _claims()
    if claims is None:
        error: Unauthorized | None = g.get("token_error")
        raise error or Unauthorized("a bearer token is required (POST /api/auth/token)")
    if claims.role < role:
        raise Forbidden(f"the {role.label} role is required; this token is {claims.role.label}")
    return claims


def client_key() -> str:
    """Rate-limit key: the verified user, else the client address (a forged token earns no fresh bucket)."""
    claims = _claims()
    if claims is not None:
        return "user:" + claims.username
    return "addr:" + (request.remote_addr or "unknown")


def install_rate_limit(app: Flask) -> None:
    """Every request spends one token of its caller's bucket; an empty bucket is 429 with Retry-After.

    The proxy is a traffic path, not an API call: it has its own, larger bucket (PROXY_RATE_LIMIT_*).
    """

    @app.before_request
    def _limit() -> None:
        rt = runtime()
        limiter = rt.proxy_limiter if request.path.startswith("/proxy/") else rt.api_limiter
        wait = limiter.hit(client_key())
        if wait is not None:
            raise RateLimited(wait)


def login_key() -> str:
    """Failed logins are counted per client address."""
    return "login:" + (request.remote_addr or "unknown")
