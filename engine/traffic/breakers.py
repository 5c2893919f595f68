"""All services' circuit breakers: made on first use with their stored thresholds; transitions persisted."""

from __future__ import annotations

import threading
from dataclasses import asdict

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker

from contract.events import BreakerEvent
from db.models import CircuitBreakerRow
from engine.clock import Clock
from engine.store.logs import event_logger
from engine.store.writer import BatchWriter
from engine.traffic.breaker import BreakerConfig, BreakerState, CircuitBreaker, Transition

__all__ = ["BreakerBook", "config_from_row"]

log = event_logger("breaker")


def config_from_row(row: CircuitBreakerRow) -> BreakerConfig:
    """The thresholds a stored row holds."""
    return BreakerConfig(
        failure_threshold=row.failure_threshold, failure_rate_threshold=row.failure_rate_threshold,
        window_size=row.window_size, minimum_calls=row.minimum_calls, slow_call_ms=row.slow_call_ms,
        open_timeout_ms=float(row.timeout_ms), half_open_calls=row.half_open_calls,
    )


class BreakerBook:
    """One CircuitBreaker per service name."""

    def __init__(self, clock: Clock, writer: BatchWriter, default: BreakerConfig | None = None) -> None:
        self._clock = clock
        self._writer = writer
        self.default = default or BreakerConfig()
        self._configs: dict[str, BreakerConfig] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def load(self, session: Session) -> None:
        """Thresholds stored for each service. State starts CLOSED (a restart forgets the window); a breaker
        stored in another state gets a transition saying so, so the timeline does not carry it across."""
        now = self._clock.now()
        for row in session.scalars(select(CircuitBreakerRow)):
            self._configs[row.service_name] = config_from_row(row)
            if row.state != BreakerState.CLOSED:
                self._writer.submit(BreakerEvent(row.service_name, row.state, BreakerState.CLOSED.value,
                                                 "engine restarted", now,
                                                 row.failure_count, row.last_failure))

    def get(self, service: str) -> CircuitBreaker:
        """The service's breaker, created on first use."""
        breaker = self._breakers.get(service)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.get(service)
                if breaker is None:
                    config = self._configs.get(service, self.default)
                    breaker = CircuitBreaker(service, config, self._clock, listeners=(self._on_transition,))
                    self._breakers[service] = breaker
        return breaker

    def state_of(self, service: str) -> BreakerState:
        """The service's breaker state, CLOSED when none was made yet (reading makes none)."""
        breaker = self._breakers.get(service)
        return breaker.state if breaker is not None else BreakerState.CLOSED

    def all(self) -> list[CircuitBreaker]:
        """Every breaker made so far, by service name."""
        return sorted(self._breakers.values(), key=lambda b: b.service)

    def configure(self, sessions: sessionmaker[Session], service: str, config: BreakerConfig) -> None:
        """Store new thresholds and apply them to the live breaker."""
        values = {
            "failure_threshold": config.failure_threshold, "failure_rate_threshold": config.failure_rate_threshold,
            "window_size": config.window_size, "minimum_calls": config.minimum_calls,
            "slow_call_ms": config.slow_call_ms, "timeout_ms": int(config.open_timeout_ms),
            "half_open_calls": config.half_open_calls,
        }
        with sessions.begin() as session:
            session.execute(
                pg_insert(CircuitBreakerRow).values(service_name=service, **values)
                .on_conflict_do_update(index_elements=[CircuitBreakerRow.service_name], set_=values)
            )
        self._configs[service] = config
        self.get(service).reconfigure(config)
        log.info("breaker %s thresholds changed", service, extra={"meta": {"service": service, **asdict(config)}})

    def _on_transition(self, t: Transition) -> None:
        breaker = self._breakers.get(t.service)
        self._writer.submit(BreakerEvent(
            t.service, t.from_state.value, t.to_state.value, t.reason, t.at,
            breaker.failures if breaker else 0, breaker.last_failure if breaker else None,
        ))
        meta = {"service": t.service, "from": t.from_state.value, "to": t.to_state.value, "reason": t.reason}
        message = f"breaker {t.service}: {t.from_state.value} -> {t.to_state.value} ({t.reason})"
        (log.warning if t.to_state is BreakerState.OPEN else log.info)(message, extra={"meta": meta})
