"""Who is logged in: the API token, role, username and expiry in st.session_state (the form is ui.login)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import streamlit as st

from contract.roles import Role

__all__ = [
    "EXPIRED",
    "Role",
    "can",
    "expire",
    "expires_at",
    "logged_in",
    "logout",
    "needs",
    "role",
    "state_for",
    "store",
    "take_notice",
    "token",
    "username",
    "who",
]

TOKEN_KEY = "mm_token"  # noqa: S105 - a session-state key
ROLE_KEY = "mm_role"
USER_KEY = "mm_username"
EXPIRES_KEY = "mm_expires_at"
_NOTICE_KEY = "_mm_login_notice"
_KEYS = (TOKEN_KEY, ROLE_KEY, USER_KEY, EXPIRES_KEY)

EXPIRED = "Your session expired — log in again."


def state_for(token: str, role: Role | str, username: str, expires_at: datetime | str | None) -> dict[str, Any]:
    """The session-state entries store() writes (tests set them on an AppTest directly)."""
    label = role.label if isinstance(role, Role) else Role.parse(role).label
    when = datetime.fromisoformat(expires_at) if isinstance(expires_at, str) else expires_at
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return {TOKEN_KEY: token, ROLE_KEY: label, USER_KEY: username, EXPIRES_KEY: when}


def store(token: str, role: Role | str, username: str, expires_at: datetime | str | None) -> None:
    """Keep a successful login (expires_at may be the API's ISO `expiresAt`)."""
    st.session_state.update(state_for(token, role, username, expires_at))


def token() -> str | None:
    """The bearer token, None when logged out."""
    value = st.session_state.get(TOKEN_KEY)
    return value if isinstance(value, str) and value else None


def role() -> Role | None:
    """The logged-in role, None when logged out."""
    label = st.session_state.get(ROLE_KEY)
    return Role.parse(label) if isinstance(label, str) and token() else None


def username() -> str | None:
    """The logged-in user name, None when logged out."""
    name = st.session_state.get(USER_KEY)
    return name if isinstance(name, str) and token() else None


def who() -> str:
    """"username (role)" for the sidebar; empty when logged out."""
    name, current = username(), role()
    return f"{name} ({current.label})" if name and current else ""


def expires_at() -> datetime | None:
    """When the token lapses, None when unknown."""
    when = st.session_state.get(EXPIRES_KEY)
    return when if isinstance(when, datetime) else None


def can(needed: Role) -> bool:
    """Whether the logged-in role is `needed` or above (admin > operator > viewer)."""
    current = role()
    return current is not None and current >= needed


def needs(needed: Role) -> str | None:
    """The help of a button `needed` may use: None when allowed, else which role it takes (for disabled=...)."""
    if can(needed):
        return None
    current = role()
    return f"Needs the {needed.label} role; you are logged in as {current.label if current else 'nobody'}."


def logout(notice: str | None = None) -> None:
    """Forget the login; `notice` is shown above the login form once."""
    for key in _KEYS:
        st.session_state.pop(key, None)
    if notice:
        st.session_state[_NOTICE_KEY] = notice


def expire() -> None:
    """The API refused the token (expired or invalid): log out and say so on the login form."""
    logout(EXPIRED)


def logged_in() -> bool:
    """A token is kept and not past its expiry; a lapsed one is dropped here (with the expired notice)."""
    if token() is None:
        return False
    when = expires_at()
    if when is not None and when <= datetime.now(UTC):
        expire()
        return False
    return True


def take_notice() -> str | None:
    """The notice logout() left for the login form, once."""
    notice = st.session_state.pop(_NOTICE_KEY, None)
    return notice if isinstance(notice, str) else None
