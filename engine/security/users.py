"""Users and roles: argon2 password hashes, the first admin, authentication, changes that end a user's tokens."""

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

__all__ = [
    "STRONG", "FirstAdmin", "HashCost", "Passwords", "admins_locked", "authenticate", "create_user", "ensure_admin",
    "passwords", "revoke_tokens", "set_password", "set_role", "use_hash_cost",
]

MIN_PASSWORD = 8


@dataclass(frozen=True)
class HashCost:
    """argon2id work per hash: passes, memory in KiB, lanes."""

    time_cost: int
    memory_cost: int
    parallelism: int


# argon2-cffi's own default (RFC 9106's low-memory profile): slow by design, what every stored hash costs
STRONG = HashCost(time_cost=3, memory_cost=65_536, parallelism=4)


class Passwords:
    """argon2id hashing at one cost; an unknown user costs a verification like a wrong password does."""

    def __init__(self, cost: HashCost = STRONG) -> None:
        """A hasher at cost, and a hash of a random password to verify against when the user does not exist."""
        self.cost = cost
        self._hasher = PasswordHasher(time_cost=cost.time_cost, memory_cost=cost.memory_cost,
                                      parallelism=cost.parallelism)
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        """The encoded argon2id hash (its parameters and salt included)."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether password matches password_hash; None (no such user) is checked against the dummy and fails."""
        try:
            self._hasher.verify(password_hash if password_hash is not None else self._dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return password_hash is not None


class _Hashing:
    """The cost users are hashed at in this process, and its hasher (built on first use)."""

    def __init__(self) -> None:
        self.cost = STRONG
        self._built: Passwords | None = None

    def current(self) -> Passwords:
        if self._built is None or self._built.cost != self.cost:
            self._built = Passwords(self.cost)
        return self._built


_hashing = _Hashing()


def passwords() -> Passwords:
    """The hasher users are created and authenticated with (STRONG unless use_hash_cost chose another)."""
    return _hashing.current()


def use_hash_cost(cost: HashCost) -> HashCost:
    """Hash and verify at cost from now on (tests choose a cheap one); returns the cost it replaces."""
    previous, _hashing.cost = _hashing.cost, cost
    return previous


def _check_length(password: str, field: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed([{"field": field, "message": f"must be at least {MIN_PASSWORD} characters"}])


def create_user(session: Session, username: str, password: str, role: Role) -> User:
    """Add a user (the caller commits); the password is stored only as an argon2 hash."""
    _check_length(password, "password")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists", [{"field": "username", "message": "taken"}])
    user = User(username=username, password_hash=passwords().hash(password), role=role.label)
    session.add(user)
    session.flush()
    return user


def revoke_tokens(user: User) -> None:
    """Raise the user's token version (the caller commits): every token issued to them before ends."""
    user.token_version = User.token_version + 1  # in the UPDATE itself: two revocations at once both count


def set_password(user: User, password: str, field: str = "password") -> None:
    """A new password (its argon2 hash); the user's tokens end. `field` names it in a validation error."""
    _check_length(password, field)
    user.password_hash = passwords().hash(password)
    revoke_tokens(user)


def admins_locked(session: Session) -> int:
    """How many admins there are, their rows locked until the caller's transaction ends: two admins demoting or
    removing each other at once cannot both pass the last-admin rule."""
    return len(session.scalars(select(User.id).where(User.role == Role.ADMIN.label).with_for_update()).all())


def set_role(session: Session, user: User, role: Role) -> None:
    """A new role; the user's tokens end. The last admin keeps the admin role (409)."""
    if role is Role.parse(user.role):
        return
    if user.role == Role.ADMIN.label and admins_locked(session) == 1:
        raise Conflict("the last admin cannot lose the admin role")
    user.role = role.label
    revoke_tokens(user)


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The user if the password matches, else None (same work either way)."""
    user = session.scalar(select(User).where(User.username == username))
    return user if passwords().verify(user.password_hash if user else None, password) else None


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
