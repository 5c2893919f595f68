"""Formatting for the dashboard: numbers, times and statuses as text; an unknown value is "n/a", never 0."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Protocol

__all__ = [
    "BREAKER_COLOURS",
    "BREAKER_EMOJI",
    "LEVEL_EMOJI",
    "LOAD_TEST_EMOJI",
    "NA",
    "SCALING_DIRECTIONS",
    "SCALING_METRICS",
    "SIMULATION_COLOURS",
    "SIMULATION_EMOJI",
    "SIMULATION_KINDS",
    "STATUS_COLOURS",
    "STATUS_EMOJI",
    "AutoscalerTarget",
    "autoscaler_summary",
    "breaker_badge_colour",
    "breaker_label",
    "dashboard_css",
    "fmt_ago",
    "fmt_count",
    "fmt_duration_ms",
    "fmt_json",
    "fmt_mb",
    "fmt_metric",
    "fmt_ms",
    "fmt_pct",
    "fmt_rate",
    "fmt_rps",
    "fmt_seconds",
    "fmt_status",
    "level_label",
    "load_test_label",
    "metric_vs_target",
    "simulation_effect",
    "simulation_kind",
    "simulation_label",
    "simulation_params",
    "simulation_target",
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

# failure simulations: active blue (in effect), ran to the end green, ended early amber, never started red
SIMULATION_EMOJI: dict[str, str] = {"active": "🔵", "completed": "🟢", "stopped": "🟠", "interrupted": "🟠",
                                    "failed": "🔴"}
SIMULATION_KINDS: dict[str, str] = {"service-failure": "Service failure", "network-latency": "Network latency",
                                    "database-overload": "Database overload", "memory-leak": "Memory leak"}
# one colour per kind, for chart spans
SIMULATION_COLOURS: dict[str, str] = {"service-failure": "#ef4444", "network-latency": "#f59e0b",
                                      "database-overload": "#a855f7", "memory-leak": "#3b82f6"}


# autoscaler metrics (contract.scaling.METRICS): API name -> what the form calls it, with its unit
SCALING_METRICS: dict[str, str] = {"inflight": "In-flight requests per instance", "cpu": "CPU % per instance",
                                   "p95": "p95 latency (ms)"}
SCALING_DIRECTIONS: dict[str, str] = {"up": "▲ up", "down": "▼ down", "none": "no change"}


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


def fmt_duration_ms(ms: float | None) -> str:
    """A duration given in ms, in the largest units that read well: "450 ms", "2.5 s", "1 min 30 s", "2 h 5 min"."""
    if ms is None or _missing(ms):
        return NA
    if abs(ms) < 1000:
        return f"{ms:,.0f} ms"
    seconds = ms / 1000.0
    if seconds < 60:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    whole = round(seconds)
    if whole < 3600:
        m, s = divmod(whole, 60)
        return f"{m} min {s} s" if s else f"{m} min"
    h, m = divmod(whole // 60, 60)
    return f"{h} h {m} min" if m else f"{h} h"


def simulation_label(status: str | None) -> str:
    """A simulation status with its emoji: "🔵 active"; None is "⚪ n/a"."""
    return f"{SIMULATION_EMOJI.get(status or '', '⚪')} {status or NA}"


def simulation_kind(kind: str) -> str:
    """"memory-leak" -> "Memory leak" (an unknown kind as it is)."""
    return SIMULATION_KINDS.get(kind, kind)


def simulation_target(kind: str, target: str | None) -> str:
    """What a simulation acts on: a service's name, "every service", or the engine's database / process."""
    if target:
        return target
    return {"network-latency": "every service", "database-overload": "the database",
            "memory-leak": "the engine"}.get(kind, NA)


def _share(probability: Any) -> str:
    p = 1.0 if probability is None else float(probability)
    return "every request" if p >= 1.0 else f"{100.0 * p:g} % of requests"


def simulation_params(kind: str, params: dict[str, Any] | None) -> str:
    """A simulation's parameters in words: "HTTP 503 on 50 % of requests for 30 s"."""
    p = params or {}
    duration = fmt_duration_ms(p.get("duration"))
    if kind == "service-failure":
        if p.get("mode") == "kill":
            return f"kill one instance process (simulation lasts {duration})"
        what = f"HTTP {p['statusCode']}" if p.get("statusCode") is not None else "connection errors"
        return f"{what} on {_share(p.get('probability'))} for {duration}"
    if kind == "network-latency":
        jitter = f" ± {p['jitter']:,g} ms" if p.get("jitter") else ""
        return f"+{p.get('latency', 0):,g} ms{jitter} on {_share(p.get('probability'))} for {duration}"
    if kind == "database-overload":
        return f"{p.get('intensity', NA)} intensity for {duration}"
    if kind == "memory-leak":
        rate, cap = p.get("rate"), p.get("capMb")
        if rate is None:
            return f"for {duration}"
        planned = math.ceil(float(rate) * float(p.get("duration") or 0) / 1000.0)
        upto = f", up to {min(planned, cap) if cap else planned:,} MB" + (f" (cap {cap:,} MB)" if cap else "")
        return f"{rate:,g} MB/s for {duration}{upto}"
    return fmt_json(p)


def _ms(value: Any) -> str:
    """A latency figure without its unit: "480", "3.2"; None is "n/a"."""
    if value is None or _missing(value):
        return NA
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.1f}"


def _plural(n: int, one: str) -> str:
    return f"{n:,} {one}" if n == 1 else f"{n:,} {one}s"


def simulation_effect(status: str | None, effect: dict[str, Any] | None) -> str:
    """What a simulation measurably did, in words ("write latency p95 12 → 480 ms", "503 requests affected")."""
    if not effect:
        return {"active": "in effect", "failed": "did not start",
                "interrupted": "not measured: the engine stopped while it was active"}.get(status or "", NA)
    if "error" in effect:
        return f"not measured: {effect['error']}"
    if "requestsAffected" in effect:
        n = int(effect["requestsAffected"])
        return "no request affected" if n == 0 else f"{_plural(n, 'request')} affected"
    if "killed" in effect:
        return f"killed {effect['killed']}"
    if "heldMb" in effect:
        before, end, after = (effect.get(k) for k in ("rssMbBefore", "rssMbAtEnd", "rssMbAfterRelease"))
        out = f"held {effect['heldMb']:,} MB"
        if before is not None and end is not None:
            out += f", RSS {before:,.0f} → {end:,.0f} MB ({end - before:+,.0f} MB)"
        if after is not None:
            out += f", {after:,.0f} MB after release"
        return out
    if "writeLatencyMs" in effect:
        w = effect["writeLatencyMs"]
        was, during = w.get("before") or {}, w.get("during") or {}
        out = f"write latency p95 {_ms(was.get('p95'))} → {_ms(during.get('p95'))} ms"
        if during.get("max") is not None:
            out += f" (max {_ms(during['max'])} ms)"
        parts = [out, _plural(int(effect.get("connections") or 0), "busy connection"),
                 _plural(int(effect.get("statements") or 0), "statement")]
        if effect.get("lockHolder"):
            parts.append("held a lock on logs")
        return ", ".join(parts)
    return fmt_json(effect)


def _figure(value: float) -> str:
    """A metric figure without its unit: "7.5", "0.333", "1,250"."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def fmt_metric(metric: str | None, value: float | None) -> str:
    """An autoscaler metric's value with its unit: "7.5 in flight / instance", "62.1 % CPU", "180 ms p95"; None is
    "n/a"."""
    if value is None or _missing(value):
        return NA
    v = _figure(value)
    return {"inflight": f"{v} in flight / instance", "cpu": f"{v} % CPU", "p95": f"{v} ms p95"}.get(metric or "", v)


def metric_vs_target(metric: str | None, value: float | None, target: float | None) -> str | None:
    """A decision's measured value against its target: "7.5 vs target 5 in flight / instance", "62 % vs target
    50 % CPU"; None for one without a metric (a manual action)."""
    if metric is None:
        return None
    unit = {"cpu": " %", "p95": " ms"}.get(metric, "")
    measured = NA if value is None or _missing(value) else f"{_figure(value)}{unit}"
    return f"{measured} vs target {fmt_metric(metric, target)}"


class AutoscalerTarget(Protocol):
    """What an autoscaler aims at: contract.scaling.AutoscalerConfig (stored) or AutoscalerOut (an API answer)."""

    @property
    def metric(self) -> str:
        """inflight | cpu | p95."""

    @property
    def target(self) -> float:
        """The value per instance aimed at, in the metric's unit."""

    @property
    def tolerance(self) -> float:
        """No change within this share of the target (0..1)."""


def autoscaler_summary(settings: AutoscalerTarget | None) -> str:
    """A service's autoscaler in a few words: "target 5 in flight / instance ± 10 %", or "off"."""
    if settings is None:
        return "off"
    return f"target {fmt_metric(settings.metric, settings.target)} ± {100.0 * settings.tolerance:g} %"


def fmt_json(value: Any) -> str:
    """A JSON cell (log metadata) as compact JSON text; None is empty."""
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


def dashboard_css() -> str:
    """The dashboard's CSS: the Overview's service cards (ui.cards) tinted with their status colour, and the one
    metrics whose value is a word (lt-status, ex-status) in smaller type."""
    rules = [
        ".mm-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr)); gap: 1rem; }",
        ".mm-card { border: 1px solid rgba(128, 128, 128, 0.35); border-left-width: 6px; border-radius: 0.5rem; "
        "padding: 0.75rem 1rem; line-height: 1.7; }",
        ".mm-caption { font-size: 0.875rem; opacity: 0.65; }",
        ".mm-badge { font-size: 0.8rem; font-weight: 600; padding: 0.1rem 0.45rem; border-radius: 0.4rem; }",
    ]
    for status, colour in STATUS_COLOURS.items():
        rules.append(f".mm-{status} {{ border-left-color: {colour}; background: {colour}1f; }}")
        rules.append(f".mm-{status} .mm-badge {{ color: {colour}; background: {colour}33; }}")
    # the load test's and the experiment run's status boxes (keyed lt-status, ex-status): a word longer than a
    # number, in smaller type of the same height
    rules.append('.st-key-lt-status [data-testid="stMetricValue"], .st-key-ex-status [data-testid="stMetricValue"] '
                 "{ font-size: 1.6rem; min-height: 3.5rem; display: flex; align-items: center; }")
    return "<style>\n" + "\n".join(rules) + "\n</style>"
