"""Pydantic schemas of request bodies; field names are the seed's camelCase."""

from __future__ import annotations

import ipaddress
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["ServiceCreate", "ServiceUpdate", "check_url", "is_loopback"]

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
Path = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^/[^\s?#]*$")]
MAX_INSTANCES = 50


def check_url(value: str) -> str:
    """An http(s) base URL with a host and no query or fragment; returned without a trailing slash."""
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"}:
        raise ValueError("must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    if len(value) > 255:
        raise ValueError("must be at most 255 characters")
    return value.rstrip("/")


def is_loopback(url: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


Url = Annotated[str, AfterValidator(check_url)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ServiceCreate(_Body):
    """POST /api/services. `url` alone means one instance, as in the seed."""

    name: Name
    url: Url | None = None
    instances: list[Url] | None = Field(default=None, max_length=MAX_INSTANCES)
    healthPath: Path = "/health"
    metricsPath: Path | None = None
    weight: int = Field(default=1, ge=1, le=1000)

    def instance_urls(self) -> list[str]:
        """url first, then instances, without duplicates."""
        urls = ([self.url] if self.url else []) + (self.instances or [])
        return list(dict.fromkeys(urls))


class ServiceUpdate(_Body):
    """PUT /api/services/<id>: every field optional; status, load and counts are measured, not set."""

    name: Name | None = None
    instances: list[Url] | None = Field(default=None, min_length=1, max_length=MAX_INSTANCES)
    healthPath: Path | None = None
    metricsPath: Path | None = None
    weight: int | None = Field(default=None, ge=1, le=1000)

    def instance_urls(self) -> list[str] | None:
        """The new instance list without duplicates, or None when unchanged."""
        return None if self.instances is None else list(dict.fromkeys(self.instances))
