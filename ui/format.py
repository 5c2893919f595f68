"""Formatting for the dashboard: numbers, times and statuses as text; an unknown value is "n/a", never 0."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

__all__ = [
    "BREAKER_COLOURS",
    "BREAKER_EMOJI",
    "LEVEL_EMOJI",
    "LOAD_TEST_EMOJI",
    "NA",
    "STATUS_COLOURS",
    "STATUS_EMOJI",
    "breaker_badge_colour",
    "breaker_label",
    "card_css",
    "fmt_ago",
    "fmt_count",
    "fmt_json",
    "fmt_mb",
    "fmt_ms",
    "fmt_pct",
    "fmt_rate",
    "fmt_rps",
    "fmt_seconds",
    "fmt_status",
    "level_label",
    "load_test_label",
    "status_badge_colour",
    "status_colour",
    "status_emoji",
]

NA = "n/a"

# healthy green, degraded amber, unhealthy red, anything else grey
STATUS_COLOURS: dict[str, str] = {
    "healthy": "#21c354",
    "degraded": "#ffa421",
    "unhealthy": "#ff4b4b",
    "unknown": "#a3a8b8",
}
STATUS_EMOJI: dict[str, str] = {"healthy": "🟢", "degraded": "🟠", "unhealthy": "🔴", "unknown": "⚪"}
_BADGE_COLOURS = {"healthy": "green", "degraded": "orange", "unhealthy": "red"}
LEVEL_EMOJI: dict[str, str] = {"DEBUG": "⚪", "INFO": "🔵", "WARN": "🟠", "ERROR": "🔴"}
# circuit breaker states: closed green (traffic flows), half-open amber (trial calls), open red (refusing)
BREAKER_COLOURS: dict[str, str] = {"CLOSED": "#21c354", "HALF_OPEN": "#ffa421", "OPEN": "#ff4b4b"}
BREAKER_EMOJI: dict[str, str] = {"CLOSED": "🟢", "HALF_OPEN": "🟠", "OPEN": "🔴"}
_BREAKER_BADGES = {"CLOSED": "green", "HALF_OPEN": "orange", "OPEN": "red"}
# load test runs: running blue, ran to the end green, cut short amber, failed to run red
LOAD_TEST_EMOJI: dict[str, str] = {"running": "🔵", "completed": "🟢", "stopped": "🟠", "interrupted": "🟠",
                                   "failed": "🔴"}


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_ms(value: float | None) -> str:
    """Milliseconds: "12.3 ms"; None (not measured) is "n/a"."""
    return NA if value is None or _missing(value) else f"{value:,.1f} ms"


def fmt_pct(value: float | None) -> str:
    """A percentage: "4.2 %", small ones with two decimals ("0.05 %"); None is "n/a"."""
    if value is None or _missing(value):
        return NA
    return f"{value:,.2f} %" if 0 < abs(value) < 1 else f"{value:,.1f} %"


def fmt_mb(value: float | None) -> str:
    """Megabytes: "123.4 MB"; None is "n/a"."""
    return NA if value is None or _missing(value) else f"{value:,.1f} MB"


def fmt_rate(value: float | None) -> str:
    """A rate such as requests per minute: "1,234.5"; None is "n/a"."""
    return NA if value is None or _missing(value) else f"{value:,.1f}"


def fmt_rps(value: float | None) -> str:
    """A request rate: "97.5 req/s"; None is "n/a"."""
    return NA if value is None or _missing(value) else f"{value:,.1f} req/s"


def fmt_seconds(value: float | None) -> str:
    """A duration in seconds: "12.3 s"; None is "n/a"."""
    return NA if value is None or _missing(value) else f"{value:,.1f} s"


def fmt_count(value: int | None) -> str:
    """A whole number with thousands separators; None is "n/a"."""
    return NA if value is None else f"{value:,d}"


def fmt_ago(when: datetime | None, now: datetime) -> str:
    """How long ago, relative to now: "4 s ago", "3 min ago", "2 h ago"; None is "n/a"."""
    if when is None:
        return NA
    seconds = max(0.0, (now - when).total_seconds())
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def status_colour(status: str | None) -> str:
    """The hex colour of a health status; unknown or unexpected values are grey."""
    return STATUS_COLOURS.get(status or "unknown", STATUS_COLOURS["unknown"])


def status_emoji(status: str | None) -> str:
    """A coloured circle for a health status; unknown or unexpected values are white."""
    return STATUS_EMOJI.get(status or "unknown", STATUS_EMOJI["unknown"])


def status_badge_colour(status: str | None) -> str:
    """The st.badge colour name of a health status."""
    return _BADGE_COLOURS.get(status or "unknown", "gray")


def fmt_status(status: str | None) -> str:
    """Emoji and name: "🟢 healthy"; None is "⚪ n/a"."""
    return f"{status_emoji(status)} {status or NA}"


def breaker_label(state: str | None) -> str:
    """A breaker state with its emoji: "🔴 OPEN"; None is "⚪ n/a"."""
    return f"{BREAKER_EMOJI.get(state or '', '⚪')} {state or NA}"


def breaker_badge_colour(state: str | None) -> str:
    """The st.badge colour name of a breaker state."""
    return _BREAKER_BADGES.get(state or "", "gray")


def level_label(level: str) -> str:
    """A log level with its emoji: "🔴 ERROR"."""
    return f"{LEVEL_EMOJI.get(level, '⚪')} {level}"


def load_test_label(status: str | None) -> str:
    """A load test status with its emoji: "🟢 completed"; None is "⚪ n/a"."""
    return f"{LOAD_TEST_EMOJI.get(status or '', '⚪')} {status or NA}"


def fmt_json(value: Any) -> str:
    """A JSON cell (log metadata) as compact JSON text; None is empty."""
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


def card_css() -> str:
    """CSS that tints containers keyed `svc-card-<status>-…` with their status colour."""
    rules = []
    for status, colour in STATUS_COLOURS.items():
        rules.append(
            f'[class*="st-key-svc-card-{status}-"] {{ border-left: 6px solid {colour} !important; '
            f"background: {colour}1f; }}"
        )
    return "<style>\n" + "\n".join(rules) + "\n</style>"
