"""Who is calling: bearer-token checks, role checks and rate limits, applied before any view runs."""

from __future__ import annotations

import hmac
import ipaddress

from flask import Flask, g, request

from contract.errors import ApiError, Forbidden, RateLimited, Unauthorized
from contract.roles import CLIENT_ADDRESS_HEADER, DASHBOARD_SECRET_HEADER, Role
from engine.api.context import runtime
from engine.security.tokens import Claims

__all__ = ["authorize", "bearer", "client_address", "client_key", "install_rate_limit", "login_key"]


def bearer() -> str | None:
    """The request's bearer token, None without one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _claims() -> Claims | None:
    """The verified claims of this request's current token (checked once per request: signature, expiry, and its
    user's token version and role in the database), None without one."""
    if "claims" not in g:
        token = bearer()
        g.claims = None
        g.token_error = None
        if token is not None:
            rt = runtime()
            try:
                verified = rt.tokens.verify(token)
                rt.token_versions.check(verified)
                g.claims = verified
            except ApiError as exc:  # 401, or 503 when the database cannot tell
                g.token_error = exc
    claims: Claims | None = g.claims
    return claims


def authorize(role: Role | None) -> Claims | None:
    """Public when role is None; else a valid token of at least that role (401 / 403 otherwise)."""
    if role is None:
        return None
    claims = _claims()
    if claims is None:
        error: ApiError | None = g.get("token_error")
        raise error or Unauthorized("a bearer token is required (POST /api/auth/token)")
    if claims.role < role:
        raise Forbidden(f"the {role.label} role is required; this token is {claims.role.label}")
    return claims


def client_key() -> str:
    """Rate-limit key: the verified user, else the client address (a forged token earns no fresh bucket)."""
    claims = _claims()
    if claims is not None:
        return "user:" + claims.username
    return "addr:" + client_address()


def client_address() -> str:
    """The caller's address: the socket's, or the one the dashboard names for its browser when the request also
    carries the dashboard's secret (without it, or with a wrong one, the named address is ignored)."""
    own = request.remote_addr or "unknown"
    named = request.headers.get(CLIENT_ADDRESS_HEADER)
    secret = request.headers.get(DASHBOARD_SECRET_HEADER)
    if named is None or secret is None:
        return own
    if not hmac.compare_digest(secret.encode(), runtime().dashboard_secret.encode()):
        return own
    try:
        return str(ipaddress.ip_address(named.strip()))
    except ValueError:
        return own


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
    """Failed logins are counted per client address (and user name, by the caller)."""
    return "login:" + client_address()
