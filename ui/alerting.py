"""The Alerts page's building blocks: what each rule kind watches and in which unit, the tables of alerts, rules and
silences, and the request bodies of the rule and silence forms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from contract.alerting import AlertKind, AlertOut, AlertRuleOut, AlertState, SilenceOut, SilenceState
from ui.format import NA

__all__ = [
    "ALERT_EMOJI",
    "EVERY_SERVICE",
    "KINDS",
    "RULE_LABELS",
    "SEVERITY_EMOJI",
    "SILENCE_EMOJI",
    "SILENCE_LABELS",
    "KindInfo",
    "alert_counts",
    "alert_table",
    "fmt_threshold",
    "fmt_value_vs_threshold",
    "rule_body",
    "rule_table",
    "silence_body",
    "silence_counts",
    "silence_table",
    "state_colours",
]

EVERY_SERVICE = "every service"

# firing red, pending amber, resolved green: the same palette as health states
ALERT_EMOJI: dict[str, str] = {"firing": "🔴", "pending": "🟠", "resolved": "🟢"}
ALERT_TINTS: dict[str, str] = {"firing": "#ff4b4b2e", "pending": "#ffa4212e", "resolved": "#21c3541f"}
SEVERITY_EMOJI: dict[str, str] = {"critical": "🚨", "warning": "⚠️", "info": "🔹"}
# a silence in effect blue (it acts now), to come grey, ended white
SILENCE_EMOJI: dict[str, str] = {"active": "🔵", "pending": "⏳", "expired": "⚪"}


@dataclass(frozen=True)
class KindInfo:
    """What a rule kind watches, in words, and what its threshold and window mean (None: not used)."""

    label: str
    watches: str
    unit: str | None  # the threshold's unit; None: the kind takes no threshold
    threshold_help: str | None
    window_help: str | None
    default_threshold: float | None = None
    required: bool = False  # the threshold must be given
    per_service: bool = True


KINDS: dict[AlertKind, KindInfo] = {
    AlertKind.SERVICE_DOWN: KindInfo("Service down", "no instance of the service serves", None, None, None),
    AlertKind.SERVICE_DEGRADED: KindInfo("Service degraded", "the service's aggregate health state is degraded",
                                         None, None, None),
    AlertKind.ERROR_RATE: KindInfo(
        "Error rate", "the share of routed requests that failed over the window is above the threshold", "%",
        "Percent of routed requests that failed (0-100).", "Seconds of routed traffic the rate is measured over.",
        5.0, required=True),
    AlertKind.LATENCY_P95: KindInfo(
        "Latency p95", "the 95th percentile of routed requests' latency over the window is above the threshold",
        "ms", "Milliseconds.", "Seconds of routed traffic the percentile is measured over.", 500.0, required=True),
    AlertKind.BREAKER_OPEN: KindInfo("Breaker open", "the service's circuit breaker is open", None, None, None),
    AlertKind.INSTANCES_BELOW: KindInfo(
        "Instances below", "fewer healthy instances than the threshold", "healthy instances",
        "A count of healthy instances; fires below it.", None, 1.0, required=True),
    AlertKind.SLO_BURN: KindInfo(
        "SLO burn", "the service's error budget burns faster than the threshold over the long and the short window",
        "x burn rate", "Burn rate: 1 spends the budget exactly over the SLO's window; empty = 14.4.",
        "The long window in seconds; the short one is a twelfth of it.", None),
    AlertKind.MONITOR_DATABASE: KindInfo("Monitor database", "the monitor's own PostgreSQL is unreachable", None,
                                         None, None, per_service=False),
}

# API field -> what the rule form calls it, for the API's errors
RULE_LABELS: dict[str, str] = {
    "name": "Name", "kind": "Kind", "service": "Service", "threshold": "Threshold", "windowSeconds": "Window (s)",
    "forSeconds": "For (s)", "severity": "Severity", "channels": "Channels", "repeatSeconds": "Repeat every (s)",
}
SILENCE_LABELS: dict[str, str] = {
    "service": "Service", "rule": "Rule", "startsAt": "Starts", "endsAt": "Ends in (min)", "comment": "Comment",
}


def _figure(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def fmt_threshold(kind: AlertKind, threshold: float | None) -> str:
    """A threshold with its kind's unit: "5 %", "500 ms", "2 healthy instances"; "—" for a kind without one."""
    info = KINDS[kind]
    if info.unit is None:
        return "—"
    if threshold is None:
        return "14.4 x burn rate (default)" if kind is AlertKind.SLO_BURN else NA
    return f"{_figure(threshold)} {info.unit}"


def fmt_value_vs_threshold(kind: AlertKind, value: float | None, threshold: float | None) -> str:
    """The measured value against the threshold: "12.5 % > 5 %", "1 < 2 healthy instances"; a kind without a
    threshold shows its value alone (or n/a)."""
    info = KINDS[kind]
    shown = NA if value is None else _figure(value)
    if info.unit is None:
        return shown
    sign = "<" if kind is AlertKind.INSTANCES_BELOW else ">"
    unit = "" if info.unit == "healthy instances" else f" {info.unit}"
    return f"{shown}{unit if value is not None else ''} {sign} {fmt_threshold(kind, threshold)}"


def _times(values: Sequence[str | None]) -> pd.Series:
    return pd.Series(pd.to_datetime(pd.Index(list(values), dtype=object), utc=True))


def alert_table(alerts: Sequence[AlertOut]) -> pd.DataFrame:
    """Alerts as the table shows them: state first, value against threshold in the rule's unit."""
    return pd.DataFrame({
        "state": [f"{ALERT_EMOJI.get(a.state, '⚪')} {a.state}" for a in alerts],
        "service": [a.service or "(the monitor)" for a in alerts],
        "rule": [a.ruleName for a in alerts],
        "kind": [KINDS[a.kind].label for a in alerts],
        "severity": [f"{SEVERITY_EMOJI.get(a.severity, '')} {a.severity}" for a in alerts],
        "value vs threshold": [fmt_value_vs_threshold(a.kind, a.value, a.threshold) for a in alerts],
        "since": _times([a.activeAt for a in alerts]),
        "silenced": [a.silenced for a in alerts],
        "summary": [a.summary for a in alerts],
    })


def state_colours(frame: pd.DataFrame) -> Any:
    """The alert table with each row tinted by its state (a pandas Styler)."""
    def tint(row: pd.Series) -> list[str]:
        state = str(row["state"]).split(" ")[-1]
        colour = ALERT_TINTS.get(state)
        return [f"background-color: {colour}" if colour else ""] * len(row)

    return frame.style.apply(tint, axis=1)


def _seconds(value: int | None) -> str:
    if value is None:
        return "never"
    return f"{value:,} s"


def rule_table(rules: Sequence[AlertRuleOut], channel_names: Mapping[int, str]) -> pd.DataFrame:
    """Rules as the table shows them, thresholds with their unit and channels by name."""
    return pd.DataFrame({
        "id": [r.id for r in rules],
        "name": [r.name for r in rules],
        "kind": [KINDS[r.kind].label for r in rules],
        "service": [r.service or ("(the monitor)" if not KINDS[r.kind].per_service else EVERY_SERVICE)
                    for r in rules],
        "threshold": [fmt_threshold(r.kind, r.threshold) for r in rules],
        "window": [_seconds(r.windowSeconds) if KINDS[r.kind].window_help else "—" for r in rules],
        "for": [_seconds(r.forSeconds) for r in rules],
        "severity": [f"{SEVERITY_EMOJI.get(r.severity, '')} {r.severity}" for r in rules],
        "channels": [", ".join(channel_names.get(c, f"#{c} (deleted)") for c in r.channels) or "none"
                     for r in rules],
        "repeat": [_seconds(r.repeatSeconds) for r in rules],
    })


def silence_table(silences: Sequence[SilenceOut], rule_names: Mapping[int, str]) -> pd.DataFrame:
    """Silences as the table shows them: state, what they match, when, why and who."""
    return pd.DataFrame({
        "id": [s.id for s in silences],
        "state": [f"{SILENCE_EMOJI.get(s.state, '⚪')} {s.state}" for s in silences],
        "service": [s.service or "any" for s in silences],
        "rule": ["any" if s.rule is None else rule_names.get(s.rule, f"#{s.rule} (deleted)") for s in silences],
        "starts": _times([s.startsAt for s in silences]),
        "ends": _times([s.endsAt for s in silences]),
        "comment": [s.comment for s in silences],
        "by": [s.createdBy or (f"simulation #{s.simulationId}" if s.simulationId else NA) for s in silences],
    })


def rule_body(*, name: str, kind: AlertKind, service: str | None, threshold: float | None, window_s: int,
              for_s: int, severity: str, channels: Sequence[int], repeat_s: int | None) -> dict[str, Any]:
    """The POST/PUT /api/alert-rules body; a kind without a threshold or a service sends none."""
    info = KINDS[kind]
    body: dict[str, Any] = {"name": name.strip(), "kind": kind.value, "windowSeconds": int(window_s),
                            "forSeconds": int(for_s), "severity": severity, "channels": list(channels)}
    if info.per_service and service and service != EVERY_SERVICE:
        body["service"] = service
    if info.unit is not None and threshold is not None:
        body["threshold"] = float(threshold)
    if repeat_s is not None:
        body["repeatSeconds"] = int(repeat_s)
    return body


def silence_body(*, service: str | None, rule: int | None, minutes: float, comment: str,
                 now: datetime) -> dict[str, Any]:
    """The POST /api/silences body: from `now` for `minutes`; no service / rule matches any."""
    body: dict[str, Any] = {"startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=minutes)).isoformat(),
                            "comment": comment.strip()}
    if service:
        body["service"] = service
    if rule is not None:
        body["rule"] = rule
    return body


def silence_counts(silences: Sequence[SilenceOut]) -> dict[SilenceState, int]:
    """How many silences are in each state."""
    counts = dict.fromkeys(SilenceState, 0)
    for s in silences:
        counts[s.state] += 1
    return counts


def alert_counts(alerts: Sequence[AlertOut]) -> dict[str, int]:
    """Firing, pending and silenced among the alerts."""
    return {"firing": sum(a.state is AlertState.FIRING for a in alerts),
            "pending": sum(a.state is AlertState.PENDING for a in alerts),
            "silenced": sum(a.silenced for a in alerts)}
