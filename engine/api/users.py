"""/api/auth/token (log in) and /api/users (admin only)."""

from __future__ import annotations

from flask import g

from contract.errors import Conflict, NotFound, RateLimited, Unauthorized
from contract.requests import TokenRequest, UserCreate
from contract.responses import DeletedOut, TokenOut, UserOut
from contract.roles import Role, RoleName
from db import queries
from db.models import User
from engine.api.audit import note_target
from engine.api.auth import login_key
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.security.users import authenticate, create_user
from engine.store.logs import event_logger

__all__ = ["api", "user_out"]

api = ApiBlueprint("users", tag="auth")
log = event_logger("auth")


def user_out(u: User) -> UserOut:
    """A user row as the API shows it (never the password hash)."""
    return UserOut(id=u.id, username=u.username, role=RoleName(u.role),
                   createdAt=u.created_at.isoformat() if u.created_at else None)


@api.route("POST", "/api/auth/token", summary="Exchange username and password for a bearer token", role=None,
           body=TokenRequest, ok=(200, TokenOut), errors=(401, 503))
def issue_token(body: TokenRequest) -> TokenOut:
    """A JWT for valid credentials; failed attempts per client address and user name are limited (429)."""
    rt = runtime()
    note_target(f"username={body.username}")  # the audit trail's target: who the attempt was for
    # charged before the password is checked and given back on success: concurrent guesses each pay, and one
    # user's mistakes do not lock out another behind the same address (the dashboard's, say)
    key = f"{login_key()} {body.username.casefold()}"
    wait = rt.login_limiter.hit(key)
    if wait is not None:
        raise RateLimited(wait, "failed logins")
    with rt.sessions() as session:
        user = authenticate(session, body.username, body.password)
    if user is None:
        log.warning("failed login for %r", body.username, extra={"meta": {"username": body.username}})
        raise Unauthorized("wrong username or password")
    rt.login_limiter.refund(key)
    role = Role.parse(user.role)
    token, expires = rt.tokens.issue(user.username, role)
    log.info("%s logged in", user.username, extra={"meta": {"username": user.username, "role": role.label}})
    return TokenOut(token=token, expiresAt=expires.isoformat(), role=RoleName(role.label))


@api.route("GET", "/api/users", summary="List users", role=Role.ADMIN, ok=(200, list[UserOut]), errors=(503,))
def list_users() -> list[UserOut]:
    """Every user, without password hashes."""
    with runtime().sessions() as session:
        return [user_out(u) for u in queries.list_users(session)]


@api.route("POST", "/api/users", summary="Add a user", role=Role.ADMIN, body=UserCreate, ok=(201, UserOut),
           errors=(409, 503))
def add_user(body: UserCreate) -> UserOut:
    """Create a user with a role."""
    with runtime().sessions.begin() as session:
        result = user_out(create_user(session, body.username, body.password, Role.parse(body.role)))
    log.info("user %s added with role %s", body.username, body.role,
             extra={"meta": {"username": body.username, "role": body.role, "by": g.claims.username}})
    return result


@api.route("DELETE", "/api/users/<int:user_id>", summary="Remove a user", role=Role.ADMIN, ok=(200, DeletedOut),
           errors=(409, 503))
def delete_user(user_id: int) -> DeletedOut:
    """Remove a user; not yourself, not the last admin. Their tokens lapse at expiry (TOKEN_TTL)."""
    with runtime().sessions.begin() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("user", user_id)
        if user.username == g.claims.username:
            raise Conflict("you cannot remove yourself")
        if user.role == RoleName.ADMIN and queries.admin_count(session) == 1:
            raise Conflict("the last admin cannot be removed")
        name = user.username
        session.delete(user)
    log.info("user %s removed", name, extra={"meta": {"username": name, "by": g.claims.username}})
    return DeletedOut(message=f"user {name} removed", id=user_id)
