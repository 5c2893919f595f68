"""How each kind of rule reads its condition from the engine's live state (never the database).

A condition answers, for one rule and one service (None for the monitor itself): whether it holds (True, False,
or None when it cannot be known yet) and the measured value it compared (None when unknown). A `Round` is one
evaluation's view of the live state: what several rules ask of one service is read once.

| kind | holds when | value |
|---|---|---|
| service-down | the service's aggregate health is unhealthy (no known instance serves) | instances serving |
| service-degraded | the aggregate is degraded (some serve, not all are healthy) | healthy instances |
| error-rate | failed / routed requests over windowSeconds, in %, > threshold (no requests: does not hold) | the % |
| latency-p95 | nearest-rank p95 of routed requests over windowSeconds, in ms, > threshold (no requests: no) | the ms |
| breaker-open | the service's breaker is OPEN or HALF_OPEN (it has not closed again) | None |
| instances-below | healthy instances < threshold | healthy instances |
| slo-burn | burn rate over windowSeconds and over windowSeconds / 12 both >= threshold (default 14.4) | the smaller |
| monitor-database | the batch writer's last attempt failed to reach PostgreSQL | events waiting |

A service whose instances are all unknown (not checked yet) leaves its health conditions unknown: an alert
restored at start is neither resolved nor re-fired before the first round of checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from contract.alerting import AlertKind
from contract.states import HealthState
from contract.traffic import BreakerState
from engine.alerting.model import Rule, SloSource
from engine.fleet.registry import ServiceSpec
from engine.health.checker import aggregate
from engine.store.logs import event_logger
from engine.traffic.window import RollingWindow, WindowCounts

__all__ = ["CONDITIONS", "DEFAULT_BURN_RATE", "Condition", "LiveState", "Reading", "Round", "describe"]

log = event_logger("alerting")
DEFAULT_BURN_RATE = 14.4  # 2 % of a 30-day budget in 1 h: the Google SRE workbook's page threshold
Reading = tuple[bool | None, float | None]  # (holds, value)


@dataclass(frozen=True)
class LiveState:
    """Where the evaluator reads the engine's state from; each a cheap in-memory read."""

    services: Callable[[], Sequence[ServiceSpec]]
    health_of: Callable[[int], HealthState]
    breaker_state: Callable[[str], BreakerState]
    window: RollingWindow
    database: Callable[[], tuple[bool, int]]  # (reachable at the writer's last attempt, events waiting)
    slo: SloSource


@dataclass(frozen=True)
class _Health:
    state: HealthState
    healthy: int
    serving: int


@dataclass
class Round:
    """One evaluation's reads of the live state, each made once."""

    live: LiveState
    services: dict[str, ServiceSpec] = field(init=False)
    _health: dict[str, _Health] = field(init=False, default_factory=dict)
    _counts: dict[tuple[str, int], WindowCounts] = field(init=False, default_factory=dict)
    _p95: dict[tuple[str, int], float | None] = field(init=False, default_factory=dict)
    _burn: dict[tuple[str, float], float | None] = field(init=False, default_factory=dict)
    _database: tuple[bool, int] | None = field(init=False, default=None)
    _slo_failed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.services = {s.name: s for s in self.live.services()}

    def health(self, service: str) -> _Health:
        """The service's aggregate state and how many of its instances are healthy and serving."""
        known = self._health.get(service)
        if known is None:
            states = [self.live.health_of(i.id) for i in self.services[service].instances]
            healthy = states.count(HealthState.HEALTHY)
            serving = healthy + states.count(HealthState.DEGRADED)
            state = aggregate(states)
            known = self._health[service] = _Health(state, healthy, serving)
        return known

    def counts(self, service: str, window_s: int) -> WindowCounts:
        """Routed requests and errors over the window (at most the rolling window's length)."""
        key = (service, window_s)
        got = self._counts.get(key)
        if got is None:
            got = self._counts[key] = self.live.window.counts(service, min(window_s, self.live.window.max_window_s))
        return got

    def p95(self, service: str, window_s: int) -> float | None:
        """Nearest-rank p95 of routed latency over the window, ms."""
        key = (service, window_s)
        if key not in self._p95:
            self._p95[key] = self.live.window.quantile(service, min(window_s, self.live.window.max_window_s), 95)
        return self._p95[key]

    def burn(self, service: str, window_s: float) -> float | None:
        """The SLO burn rate over the window; None when the SLO source fails (said once a round), so one broken
        source does not stop every other rule."""
        key = (service, window_s)
        if key not in self._burn:
            try:
                self._burn[key] = self.live.slo.burn_rate(service, window_s)
            except Exception:
                if not self._slo_failed:
                    log.exception("the SLO source failed; slo-burn rules read unknown this round")
                self._slo_failed, self._burn[key] = True, None
        return self._burn[key]

    def database(self) -> tuple[bool, int]:
        """Whether the writer reached the database at its last attempt, and events waiting."""
        if self._database is None:
            self._database = self.live.database()
        return self._database


Condition = Callable[[Round, Rule, str | None], Reading]


def _down(r: Round, rule: Rule, service: str | None) -> Reading:
    h = r.health(service or "")
    if h.state is HealthState.UNKNOWN:
        return None, None
    return h.state is HealthState.UNHEALTHY, float(h.serving)


def _degraded(r: Round, rule: Rule, service: str | None) -> Reading:
    h = r.health(service or "")
    if h.state is HealthState.UNKNOWN:
        return None, None
    return h.state is HealthState.DEGRADED, float(h.healthy)


def _instances_below(r: Round, rule: Rule, service: str | None) -> Reading:
    h = r.health(service or "")
    if h.state is HealthState.UNKNOWN:
        return None, None
    return h.healthy < (rule.threshold or 0.0), float(h.healthy)


def _error_rate(r: Round, rule: Rule, service: str | None) -> Reading:
    c = r.counts(service or "", rule.window_s)
    if c.requests == 0:
        return False, None
    rate = 100.0 * c.errors / c.requests
    return rate > (rule.threshold or 0.0), rate


def _latency(r: Round, rule: Rule, service: str | None) -> Reading:
    p95 = r.p95(service or "", rule.window_s)
    if p95 is None:
        return False, None
    return p95 > (rule.threshold or 0.0), p95


def _breaker(r: Round, rule: Rule, service: str | None) -> Reading:
    # HALF_OPEN holds too: the breaker has not closed, and counting it as recovered would resolve and re-fire
    # the alert on every open timeout while the service stays broken
    return r.live.breaker_state(service or "") is not BreakerState.CLOSED, None


def _slo_burn(r: Round, rule: Rule, service: str | None) -> Reading:
    threshold = DEFAULT_BURN_RATE if rule.threshold is None else rule.threshold
    long = r.burn(service or "", float(rule.window_s))
    if long is None:
        return False, None
    short = r.burn(service or "", rule.window_s / 12.0)
    if short is None:
        return False, None
    slower = min(long, short)
    return slower >= threshold, slower


def _database(r: Round, rule: Rule, service: str | None) -> Reading:
    ok, waiting = r.database()
    return not ok, float(waiting)


CONDITIONS: dict[AlertKind, Condition] = {
    AlertKind.SERVICE_DOWN: _down,
    AlertKind.SERVICE_DEGRADED: _degraded,
    AlertKind.ERROR_RATE: _error_rate,
    AlertKind.LATENCY_P95: _latency,
    AlertKind.BREAKER_OPEN: _breaker,
    AlertKind.INSTANCES_BELOW: _instances_below,
    AlertKind.SLO_BURN: _slo_burn,
    AlertKind.MONITOR_DATABASE: _database,
}


def _figure(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.4g}{unit}"


def describe(rule: Rule, service: str | None, value: float | None, holds: bool | None) -> str:
    """The one-line summary of an alert (built only when an alert is shown or changes)."""
    who = service or "the monitor"
    kind, t = rule.kind, rule.threshold
    if kind is AlertKind.SERVICE_DOWN:
        return f"{who} is down: no instance serves" if holds else f"{who} serves ({_figure(value)} instances)"
    if kind is AlertKind.SERVICE_DEGRADED:
        return f"{who} is degraded: {_figure(value)} instances healthy" if holds else f"{who} is not degraded"
    if kind is AlertKind.ERROR_RATE:
        return f"{who}: {_figure(value, ' %')} of routed requests failed over {rule.window_s} s (threshold {t:g} %)" \
            if value is not None and t is not None else f"{who}: no requests routed over {rule.window_s} s"
    if kind is AlertKind.LATENCY_P95:
        return f"{who}: p95 {_figure(value, ' ms')} over {rule.window_s} s (threshold {t:g} ms)" \
            if value is not None and t is not None else f"{who}: no requests routed over {rule.window_s} s"
    if kind is AlertKind.BREAKER_OPEN:
        return f"{who}: circuit breaker is not closed" if holds else f"{who}: circuit breaker closed"
    if kind is AlertKind.INSTANCES_BELOW:
        return f"{who}: {_figure(value)} healthy instances (fewer than {_figure(t)} fires)"
    if kind is AlertKind.SLO_BURN:
        limit = DEFAULT_BURN_RATE if t is None else t
        return f"{who}: error budget burning {_figure(value)}x over {rule.window_s} s and {rule.window_s / 12:g} s " \
               f"(threshold {limit:g}x)"
    if holds:
        return f"the monitor's database is unreachable ({_figure(value)} events waiting to be written)"
    return "the monitor's database is reachable"
