"""Request bodies and query strings of the registry, logs and users, and the field types every area shares."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from contract.roles import RoleName

__all__ = [
    "MAX_ID",
    "Duration",
    "Id",
    "InstanceIn",
    "LogLevel",
    "LogQuery",
    "Name",
    "PasswordChange",
    "Probability",
    "ServiceCreate",
    "ServiceQuery",
    "ServiceSort",
    "ServiceUpdate",
    "StrictModel",
    "TokenRequest",
    "UserCreate",
    "UserUpdate",
    "check_url",
]

Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Path = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^/[^\s?#]*$")]
MAX_INSTANCES = 50
MAX_ID = 2**31 - 1  # every id is a PostgreSQL integer
Id = Annotated[int, Field(ge=1, le=MAX_ID)]  # an id in a body: a larger number never reaches the database


def check_url(value: str) -> str:
    """An http(s) base URL with a host and no credentials, query or fragment; no trailing slash."""
    value = value.strip()
    if len(value) > 255:
        raise ValueError("must be at most 255 characters")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"}:
        raise ValueError("must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value.rstrip("/")


Url = Annotated[str, AfterValidator(check_url)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


def _iso_date_time(value: object) -> object:
    # pydantic would also read a bare number as seconds since 1970; the document promises an RFC 3339 date-time
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_date_time)]  # a date-time in a query string


def _launch_command(value: str) -> str:
    value = _no_nul(value.strip())
    if "{port}" not in value:
        raise ValueError("must contain {port}, where the engine puts each instance's loopback port")
    if len(value) > 1000:
        raise ValueError("must be at most 1000 characters")
    return value


class LogLevel(StrEnum):
    """A log row's level."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


class StrictModel(BaseModel):
    """A request model: unknown fields are refused, surrounding whitespace is stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class InstanceIn(StrictModel):
    """An instance with a balancer weight (a bare URL string means weight 1, or unchanged on PUT)."""

    url: Url
    weight: int = Field(ge=1, le=1000)


InstanceItem = Url | InstanceIn


def _specs(items: list[str | InstanceIn]) -> dict[str, int | None]:
    """URL -> weight (None when given as a bare URL), in order, duplicates dropped."""
    out: dict[str, int | None] = {}
    for item in items:
        url, weight = (item, None) if isinstance(item, str) else (item.url, item.weight)
        out.setdefault(url, weight)
    return out


class ServiceCreate(StrictModel):
    """POST /api/services. `url` alone means one instance."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True,
        json_schema_extra={"anyOf": [{"required": [f], "properties": {f: {"not": {"type": "null"}}}}
                                     for f in ("url", "instances", "launchCommand")]},
    )

    name: Name
    url: Url | None = None
    instances: list[InstanceItem] | None = Field(default=None, min_length=1, max_length=MAX_INSTANCES)
    healthPath: Path = "/health"
    metricsPath: Path | None = None
    weight: int = Field(default=1, ge=1, le=1000)
    launchCommand: Annotated[str, AfterValidator(_launch_command)] | None = Field(
        default=None, description="managed service (admin only): a command with {port}; the engine runs it")
    minInstances: int = Field(default=1, ge=1, le=100)
    maxInstances: int = Field(default=10, ge=1, le=100)

    def instance_specs(self) -> dict[str, int | None]:
        """url first, then instances: URL -> weight (None = default), without duplicates."""
        return _specs([*([self.url] if self.url else []), *(self.instances or [])])


class ServiceUpdate(StrictModel):
    """PUT /api/services/<id>: every field optional; status, load and counts are measured, not set."""

    name: Name | None = None
    instances: list[InstanceItem] | None = Field(default=None, min_length=1, max_length=MAX_INSTANCES)
    healthPath: Path | None = None
    metricsPath: Path | None = None
    weight: int | None = Field(default=None, ge=1, le=1000)

    def instance_specs(self) -> dict[str, int | None] | None:
        """The new instances, URL -> weight (None = keep or default), or None when unchanged."""
        return None if self.instances is None else _specs(self.instances)


class ServiceSort(StrEnum):
    """Orders of GET /api/services: by id (registration), by name, or worst status first (then by name)."""

    ID = "id"
    NAME = "name"
    STATUS = "status"


_STATES = ("healthy", "degraded", "unhealthy", "unknown")


def _status_list(value: str) -> str:
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    wrong = [n for n in names if n not in _STATES]
    if wrong or not names:
        given = ", ".join(wrong) or repr(value)
        raise ValueError(f"give one or more of {', '.join(_STATES)}, comma-separated (not {given})")
    return ",".join(dict.fromkeys(names))


class ServiceQuery(StrictModel):
    """GET /api/services query string: filters, order and a page; without limit every matching service."""

    status: Annotated[str, AfterValidator(_status_list)] | None = Field(
        default=None, max_length=100,
        description="healthy, degraded, unhealthy or unknown; a comma list is any of them")
    name: Text | None = Field(default=None, min_length=1, max_length=100,
                              description="part of the name, any case")
    sort: ServiceSort = ServiceSort.ID
    limit: int | None = Field(default=None, ge=1, le=1000, description="at most this many services; none = all")
    offset: int = Field(default=0, ge=0, le=1_000_000, description="services to skip first")

    def statuses(self) -> tuple[str, ...]:
        """The status filter as a tuple, empty for none."""
        return tuple(self.status.split(",")) if self.status else ()


class LogQuery(StrictModel):
    """GET /api/logs query string."""

    limit: int = Field(default=100, ge=1, le=1000)
    level: LogLevel | None = None
    source: Text | None = Field(default=None, max_length=100)
    q: Text | None = Field(default=None, max_length=200)
    since: IsoDateTime | None = None


class TokenRequest(BaseModel):
    """POST /api/auth/token (whitespace in a password is part of it)."""

    model_config = ConfigDict(extra="forbid")

    username: Text = Field(min_length=1, max_length=100)
    password: Text = Field(min_length=1, max_length=200)


Password = Annotated[str, StringConstraints(min_length=8, max_length=200), AfterValidator(_no_nul)]


class UserCreate(BaseModel):
    """POST /api/users (admin)."""

    model_config = ConfigDict(extra="forbid")

    username: Name
    password: Password
    role: RoleName


class UserUpdate(BaseModel):
    """PUT /api/users/<id> (admin): a new role, a new password, or both; either ends the user's tokens."""

    model_config = ConfigDict(extra="forbid")  # no stripping: whitespace in a password is part of it

    role: RoleName | None = None
    password: Password | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.role is None and self.password is None:
            raise ValueError("give a role, a password, or both")
        return self


class PasswordChange(BaseModel):
    """PUT /api/auth/password: the caller's own password, proven by the current one; the caller's other tokens
    end."""

    model_config = ConfigDict(extra="forbid")

    currentPassword: Text = Field(min_length=1, max_length=200)
    newPassword: Password


Duration = Annotated[float, Field(gt=0, le=86_400_000, description="milliseconds")]
Probability = Annotated[float, Field(gt=0, le=1, description="share of requests affected, 0..1")]


