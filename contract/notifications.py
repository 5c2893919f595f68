"""Notifications: the channels an alert travels through (webhook, Slack, e-mail, Apprise) and their deliveries.

A channel's config is checked against its type's model (CONFIG_MODELS); the API shows its secrets as SECRET_MASK.
A delivery is one notification to one channel, retried until it arrives or is given up.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from contract.requests import MAX_ID, Name, StrictModel

__all__ = [
    "CONFIG_MODELS",
    "SECRET_MASK",
    "AppriseConfig",
    "ChannelIn",
    "ChannelOut",
    "ChannelType",
    "DeliveryEvent",
    "DeliveryOut",
    "DeliveryQuery",
    "DeliveryStatus",
    "EmailConfig",
    "SlackConfig",
    "WebhookConfig",
]

SECRET_MASK = "********"  # noqa: S105 (a mask, not a secret): what the API shows in place of a channel's secret


class ChannelType(StrEnum):
    """How a notification travels."""

    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"
    APPRISE = "apprise"


HttpUrl = Annotated[str, StringConstraints(min_length=8, max_length=2000, pattern=r"^https?://\S+$")]
Address = Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]


class WebhookConfig(StrictModel):
    """A JSON POST in Alertmanager's webhook shape; with a secret, `X-Signature: sha256=<HMAC of the body>`."""

    url: HttpUrl
    secret: str | None = Field(default=None, min_length=1, max_length=500)


class SlackConfig(StrictModel):
    """A Slack incoming webhook (the URL is the secret)."""

    url: HttpUrl


class EmailConfig(StrictModel):
    """An SMTP server and the addresses a notification goes from and to."""

    host: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, max_length=500)
    from_: Address = Field(alias="from")
    to: list[Address] = Field(min_length=1, max_length=50)


class AppriseConfig(StrictModel):
    """Any Apprise URL (discord://, tgram://, msteams://, ntfy://, pagerduty://, opsgenie://, …)."""

    url: Annotated[str, StringConstraints(min_length=4, max_length=2000, pattern=r"^[a-z][a-z0-9+.-]*://\S+$")]


CONFIG_MODELS: dict[ChannelType, type[StrictModel]] = {
    ChannelType.WEBHOOK: WebhookConfig,
    ChannelType.SLACK: SlackConfig,
    ChannelType.EMAIL: EmailConfig,
    ChannelType.APPRISE: AppriseConfig,
}


class ChannelIn(StrictModel):
    """POST and PUT /api/alert-channels; `config` is checked against the type's model (see the *Config models).

    On PUT, a secret field left out keeps the stored one."""

    name: Name
    type: ChannelType
    config: dict[str, Any]


class ChannelOut(BaseModel):
    """A channel, its secrets masked (a webhook's secret, an SMTP password, a Slack or Apprise URL's tokens)."""

    id: int
    name: str
    type: ChannelType
    config: dict[str, Any]
    createdAt: str


class DeliveryStatus(StrEnum):
    """Where a notification is: not yet sent, failed and waiting for the next attempt, arrived, or given up."""

    PENDING = "pending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"


class DeliveryEvent(StrEnum):
    """Why a notification was sent."""

    FIRING = "firing"
    REPEAT = "repeat"
    RESOLVED = "resolved"
    TEST = "test"


class DeliveryQuery(StrictModel):
    """GET /api/deliveries query string."""

    channel: int | None = Field(default=None, ge=1, le=MAX_ID)
    status: DeliveryStatus | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class DeliveryOut(BaseModel):
    """One notification to one channel, with every attempt's outcome."""

    id: str
    channelId: int | None
    channelName: str
    fingerprint: str | None
    event: DeliveryEvent
    status: DeliveryStatus
    attempts: int
    lastError: str | None
    createdAt: str
    nextAttemptAt: str | None
    deliveredAt: str | None
    payload: dict[str, Any]
