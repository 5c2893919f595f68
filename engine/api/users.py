"""/api/auth/token (log in), /api/auth/logout and /api/auth/password (any user, for themselves), and /api/users
(admin only). Logging out, a new password or role, and removal end every token of the user at once."""

from __future__ import annotations

from flask import g
from sqlalchemy import select

from contract.errors import Conflict, Forbidden, NotFound, RateLimited, Unauthorized
from contract.requests import PasswordChange, TokenRequest, UserCreate, UserUpdate
from contract.responses import DeletedOut, MessageOut, TokenOut, UserOut
from contract.roles import Role, RoleName
from db import queries
from db.models import User
from engine.api.audit import note_target
from engine.api.auth import login_key
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.security.users import (
    admins_locked,
    authenticate,
    create_user,
    revoke_tokens,
    set_password,
    set_role,
)
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
    log.info("%s logged in", user.username, extra={"meta": {"username": user.username, "role": user.role}})
    return _token_of(user)


def _token_of(user: User) -> TokenOut:
    """A fresh token at the user's current token version."""
    role = Role.parse(user.role)
    token, expires = runtime().tokens.issue(user.username, role, user.token_version)
    return TokenOut(token=token, expiresAt=expires.isoformat(), role=RoleName(role.label))


@api.route("POST", "/api/auth/logout", summary="End every token of the caller", role=Role.VIEWER,
           ok=(200, MessageOut), errors=(503,))
def logout() -> MessageOut:
    """Every token of the calling user ends now, on every device (not only the one sent)."""
    rt = runtime()
    name = g.claims.username
    with rt.sessions.begin() as session:
        user = session.scalar(select(User).where(User.username == name))
        if user is None:  # removed since the token was checked
            raise Unauthorized("the token's user no longer exists")
        revoke_tokens(user)
    rt.token_versions.forget(name)
    log.info("%s logged out", name, extra={"meta": {"username": name}})
    return MessageOut(message=f"every token of {name} has ended")


@api.route("PUT", "/api/auth/password", summary="Change your own password", role=Role.VIEWER,
           body=PasswordChange, ok=(200, TokenOut), errors=(403, 429, 503))
def change_password(body: PasswordChange) -> TokenOut:
    """A new password for the caller, proven by the current one (limited like logins); the caller's other tokens
    end, and a fresh one is returned."""
    rt = runtime()
    name = g.claims.username
    key = f"{login_key()} {name.casefold()}"
    wait = rt.login_limiter.hit(key)
    if wait is not None:
        raise RateLimited(wait, "failed password checks")
    with rt.sessions.begin() as session:
        user = authenticate(session, name, body.currentPassword)
        if user is None:
            log.warning("wrong current password in a password change by %r", name, extra={"meta": {"username": name}})
            raise Forbidden("the current password is wrong",
                            [{"field": "currentPassword", "message": "wrong password"}])
        set_password(user, body.newPassword, "newPassword")
        session.flush()
        answer = _token_of(user)  # at the raised version
    rt.login_limiter.refund(key)
    rt.token_versions.forget(name)
    log.info("%s changed their password", name, extra={"meta": {"username": name}})
    return answer


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
    """Remove a user; not yourself, not the last admin. Their tokens end at once."""
    with runtime().sessions.begin() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("user", user_id)
        if user.username == g.claims.username:
            raise Conflict("you cannot remove yourself")
        if user.role == RoleName.ADMIN and admins_locked(session) == 1:
            raise Conflict("the last admin cannot be removed")
        name = user.username
        session.delete(user)
    runtime().token_versions.forget(name)
    log.info("user %s removed", name, extra={"meta": {"username": name, "by": g.claims.username}})
    return DeletedOut(message=f"user {name} removed", id=user_id)


@api.route("PUT", "/api/users/<int:user_id>", summary="Change a user's role or password", role=Role.ADMIN,
           body=UserUpdate, ok=(200, UserOut), errors=(409, 503))
def update_user(user_id: int, body: UserUpdate) -> UserOut:
    """A new role, a new password, or both; the user's tokens end. The last admin keeps the admin role (409)."""
    rt = runtime()
    with rt.sessions.begin() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("user", user_id)
        if body.role is not None:
            set_role(session, user, Role.parse(body.role))
        if body.password is not None:
            set_password(user, body.password)
        session.flush()
        result = user_out(user)
    rt.token_versions.forget(result.username)
    changed = [f for f in ("role", "password") if getattr(body, f) is not None]
    log.info("user %s changed: %s", result.username, ", ".join(changed),
             extra={"meta": {"username": result.username, "changed": changed, "role": result.role,
                             "by": g.claims.username}})
    return result
