"""One exception tree for the whole product.

    MonitorError                      root: anything the product raises on purpose
    ├── ConfigError                   a bad environment variable (names it)
    ├── DatabaseError                 the database cannot be reached or started
    ├── ApiError                      maps to an HTTP status in engine.api.errors
    │   ├── ValidationFailed          400/422: a field is wrong (details name each field)
    │   ├── Unauthorized              401: no token, bad token, wrong password
    │   ├── Forbidden                 403: the role may not do this
    │   ├── NotFound                  404
    │   ├── Conflict                  409: duplicate name, wrong state
    │   ├── RateLimited               429: slow down (carries retry_after)
    │   └── Unavailable               503: a dependency is down
    ├── ProcessError                  a managed OS process failed to start or stop
    └── DeliveryFailed                one attempt to send a notification failed (says why, never a secret)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "ConfigError",
    "Conflict",
    "DatabaseError",
    "DeliveryFailed",
    "Forbidden",
    "MonitorError",
    "NotFound",
    "ProcessError",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
]


class MonitorError(Exception):
    """Root of every error the product raises on purpose."""


class ConfigError(MonitorError):
    """An environment variable has a value the product cannot use."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class DatabaseError(MonitorError):
    """The database cannot be reached, started or migrated."""


class ProcessError(MonitorError):
    """A managed OS process failed to start, become ready, or stop."""


class DeliveryFailed(MonitorError):
    """One attempt to send a notification failed: a refused address, a timeout, an error answer."""


class ApiError(MonitorError):
    """An error with an HTTP status and a JSON body."""

    status = 500

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        self.message = message
        self.details = details or []
        super().__init__(message)


class ValidationFailed(ApiError):
    """A request field is missing or wrong; details name each field."""

    status = 422

    def __init__(self, details: list[dict[str, Any]], status: int = 422) -> None:
        fields = ", ".join(str(d.get("field")) for d in details)
        super().__init__(f"invalid request: {fields}", details)
        self.status = status


class NotFound(ApiError):
    """The resource does not exist."""

    status = 404

    def __init__(self, kind: str, key: object) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class Conflict(ApiError):
    """The request clashes with existing state (a duplicate name, a wrong state)."""

    status = 409


class Unavailable(ApiError):
    """A dependency the request needs (usually the database) is down."""

    status = 503


class Unauthorized(ApiError):
    """401: no token, a bad token, or wrong credentials."""

    status = 401


class Forbidden(ApiError):
    """403: the caller's role may not do this."""

    status = 403


class RateLimited(ApiError):
    """429: too many requests from this caller; retry after `retry_after` seconds."""

    status = 429

    def __init__(self, retry_after: float, what: str = "requests") -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(f"too many {what}; retry after {self.retry_after} s")
