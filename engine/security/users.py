"""Users and roles: argon2 password hashes, the first admin, authentication."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contract.errors import Conflict, ValidationFailed
from contract.roles import ADMIN_PASSWORD_FILE, Role
from db.models import User
from engine.security.secretfile import write_secret

__all__ = ["FirstAdmin", "authenticate", "create_user", "ensure_admin"]

MIN_PASSWORD = 8
_hasher = PasswordHasher()
# verified against when the user does not exist, so a wrong name costs as long as a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def create_user(session: Session, username: str, password: str, role: Role) -> User:
    """Add a user (the caller commits); the password is stored only as an argon2 hash."""
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed([{"field": "password", "message": f"must be at least {MIN_PASSWORD} characters"}])
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists", [{"field": "username", "message": "taken"}])
    user = User(username=username, password_hash=_hasher.hash(password), role=role.label)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The user if the password matches, else None (same work either way)."""
    user = session.scalar(select(User).where(User.username == username))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


@dataclass(frozen=True)
class FirstAdmin:
    """The admin made on first start; password set only when it was generated (to print once)."""

    username: str
    generated_password: str | None
    password_file: Path | None


def ensure_admin(session: Session, data_dir: Path, admin_password: str | None) -> FirstAdmin | None:
    """With no users at all, create `admin` (ADMIN_PASSWORD, or a generated one kept 0600 in data_dir)."""
    if session.scalar(select(func.count()).select_from(User)):
        return None
    if admin_password:
        create_user(session, "admin", admin_password, Role.ADMIN)
        return FirstAdmin("admin", None, None)
    password = secrets.token_urlsafe(12)
    create_user(session, "admin", password, Role.ADMIN)
    path = data_dir / ADMIN_PASSWORD_FILE
    write_secret(path, password)
    return FirstAdmin("admin", password, path)
