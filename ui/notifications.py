"""The Notifications page's building blocks: each channel type's config fields (from contract.notifications' *Config
models: meaning, unit, which are secrets), the request bodies of the channel forms, and the tables of channels and
deliveries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from contract.notifications import SECRET_MASK, ChannelOut, ChannelType, DeliveryOut
from ui.format import NA

__all__ = [
    "CONFIG_FIELDS",
    "DELIVERY_EMOJI",
    "TYPE_HELP",
    "ConfigField",
    "channel_body",
    "channel_labels",
    "channel_table",
    "delivery_table",
    "fmt_config",
    "kept_when_empty",
]

# delivered green, on its way blue, waiting for a retry amber, given up red
DELIVERY_EMOJI: dict[str, str] = {"delivered": "🟢", "pending": "🔵", "retrying": "🟠", "failed": "🔴"}

TYPE_HELP: dict[ChannelType, str] = {
    ChannelType.WEBHOOK: "A JSON POST in Alertmanager's webhook shape, signed with HMAC-SHA256 when given a secret.",
    ChannelType.SLACK: "A message to a Slack channel through an incoming webhook.",
    ChannelType.EMAIL: "An email through your SMTP server.",
    ChannelType.APPRISE: "Any service Apprise reaches: Discord, Telegram, Teams, ntfy, PagerDuty, Opsgenie, ...",
}


@dataclass(frozen=True)
class ConfigField:
    """One field of a channel type's config: its key in the API, label, meaning, input kind and whether it is a
    secret (never shown, never prefilled; left empty on edit, the stored one is kept)."""

    key: str
    label: str
    help: str
    kind: Literal["text", "int", "bool", "lines"] = "text"
    required: bool = True
    secret: bool = False
    default: Any = None


CONFIG_FIELDS: dict[ChannelType, tuple[ConfigField, ...]] = {
    ChannelType.WEBHOOK: (
        ConfigField("url", "URL", "Where the JSON POST goes: an http:// or https:// address."),
        ConfigField("secret", "Signing secret", "Optional. Each body is signed: X-Signature: sha256=<HMAC-SHA256 "
                    "of the body with this secret>. Empty = unsigned.", required=False, secret=True),
    ),
    ChannelType.SLACK: (
        ConfigField("url", "Incoming webhook URL", "The Slack incoming webhook (https://hooks.slack.com/services/"
                    "...); it is the secret, so it is never shown again.", secret=True),
    ),
    ChannelType.EMAIL: (
        ConfigField("host", "SMTP host", "The SMTP server's host name or address."),
        ConfigField("port", "SMTP port", "TCP port, 1-65535: 587 for STARTTLS, 465 for TLS, 25 for plain.",
                    kind="int", default=587),
        ConfigField("starttls", "STARTTLS", "Upgrade the connection to TLS before logging in.", kind="bool",
                    default=True),
        ConfigField("username", "Username", "Optional: the SMTP login.", required=False),
        ConfigField("password", "Password", "Optional: the SMTP password.", required=False, secret=True),
        ConfigField("from", "From", "The sender address, e.g. monitor@example.com."),
        ConfigField("to", "To", "The recipients, one address per line (at most 50).", kind="lines"),
    ),
    ChannelType.APPRISE: (
        ConfigField("url", "Apprise URL", "Any Apprise URL (discord://..., tgram://..., ntfy://..., "
                    "pagerduty://...); it holds tokens, so it is never shown again.", secret=True),
    ),
}



def channel_labels(kind: ChannelType) -> dict[str, str]:
    """API field -> what the form of a channel of this type calls it, for the API's errors."""
    return {"name": "Name", "type": "Type", "config": "Config"} | {
        f"config.{f.key}": f.label for f in CONFIG_FIELDS[kind]}


def kept_when_empty(field: ConfigField, shown: Any) -> bool:
    """On edit, whether an empty input keeps the stored value: a secret, or a value the API showed masked."""
    return field.secret or (isinstance(shown, str) and SECRET_MASK in shown)


def channel_body(name: str, kind: ChannelType, values: Mapping[str, Any], *, editing: bool,
                 shown: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The POST/PUT /api/alert-channels body from the form's values (keyed by config field).

    Empty optional fields are left out; on edit a field kept when empty (a secret, or one the API showed masked)
    is left out too, so the engine keeps the stored one. "lines" become a list, one entry per non-blank line.
    """
    config: dict[str, Any] = {}
    for f in CONFIG_FIELDS[kind]:
        value = values.get(f.key)
        if f.kind == "lines":
            value = [line.strip() for line in str(value or "").splitlines() if line.strip()]
        elif isinstance(value, str):
            value = value.strip()
        empty = value is None or value in ("", [])
        if empty and (not f.required or (editing and kept_when_empty(f, (shown or {}).get(f.key)))):
            continue
        config[f.key] = value
    return {"name": name.strip(), "type": kind.value, "config": config}


def fmt_config(config: Mapping[str, Any]) -> str:
    """A channel's config as the API showed it (secrets masked), one "key: value" per entry."""
    parts = []
    for key, value in config.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else "" if value is None else str(value)
        parts.append(f"{key}: {shown}")
    return " · ".join(parts)


def channel_table(channels: Sequence[ChannelOut]) -> pd.DataFrame:
    """Channels as the API lists them (secrets masked there)."""
    return pd.DataFrame({
        "id": [c.id for c in channels],
        "name": [c.name for c in channels],
        "type": [c.type.value for c in channels],
        "config": [fmt_config(c.config) for c in channels],
        "created": pd.to_datetime(pd.Index([c.createdAt for c in channels], dtype=object), utc=True),
    })


def _times(values: Sequence[str | None]) -> pd.DatetimeIndex:
    return pd.to_datetime(pd.Index(list(values), dtype=object), utc=True)


def delivery_table(deliveries: Sequence[DeliveryOut]) -> pd.DataFrame:
    """Deliveries, newest first: when, where, why, the outcome and every attempt's count."""
    return pd.DataFrame({
        "created": _times([d.createdAt for d in deliveries]),
        "channel": [d.channelName + ("" if d.channelId is not None else " (deleted)") for d in deliveries],
        "event": [d.event.value for d in deliveries],
        "status": [f"{DELIVERY_EMOJI.get(d.status, '⚪')} {d.status.value}" for d in deliveries],
        "attempts": [d.attempts for d in deliveries],
        "last error": [d.lastError or "" for d in deliveries],
        "delivered": _times([d.deliveredAt for d in deliveries]),
        "next attempt": _times([d.nextAttemptAt for d in deliveries]),
        "alert": [d.fingerprint or NA for d in deliveries],
    })
