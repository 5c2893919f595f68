"""Roles: viewer, operator and admin, each allowed what the ones below it are; how the dashboard names its
browser's address to the API."""

from __future__ import annotations

import enum

__all__ = [
    "ADMIN_PASSWORD_FILE", "CLIENT_ADDRESS_HEADER", "DASHBOARD_SECRET_HEADER", "DASHBOARD_SECRET_VAR", "Role",
    "RoleName",
]

# under DATA_DIR: the first admin's generated password, which the engine writes and the dashboard offers
ADMIN_PASSWORD_FILE = "admin_password"  # noqa: S105 - a file name, not a password

# the engine gives the dashboard it starts a random secret (per run) in this variable; the dashboard's calls carry
# it with the browser's address, which the API then counts (logins, rate limits) instead of the dashboard's own
DASHBOARD_SECRET_VAR = "DASHBOARD_SECRET"  # noqa: S105 - a variable name
DASHBOARD_SECRET_HEADER = "X-Dashboard-Secret"  # noqa: S105 - a header name
CLIENT_ADDRESS_HEADER = "X-Client-Address"


class Role(enum.IntEnum):
    """Ordered: each role may do what the ones below it may."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The lower-case name used in tokens and the API."""
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Role:
        """viewer | operator | admin."""
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r}; valid: viewer, operator, admin") from None


class RoleName(enum.StrEnum):
    """A role as tokens and the API spell it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
