"""The Chaos page's building blocks: an active simulation's countdown, the banner naming the active ones, the
history in words, and what each database-overload intensity does."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from contract.chaos import INTENSITY_PRESSURE
from db.models import Simulation
from ui.format import (
    fmt_duration_ms,
    simulation_effect,
    simulation_kind,
    simulation_label,
    simulation_params,
    simulation_target,
)

__all__ = ["Countdown", "active_banner", "countdown", "intensity_help", "now", "simulation_history"]


def now() -> datetime:
    """The time the Chaos page counts active simulations down from (UTC); the one place it reads the clock."""
    return datetime.now(UTC)


def intensity_help() -> str:
    """What each database-overload intensity does."""
    parts = [f"{name}: {n} busy connection{'s' if n > 1 else ''}" + (", and a lock the engine's writes wait for"
                                                                       if lock else "")
             for name, (n, lock) in INTENSITY_PRESSURE.items()]
    return "CPU-heavy statements on the engine's database. " + "; ".join(parts) + "."


@dataclass(frozen=True)
class Countdown:
    """Where an active simulation is: time left (0 once due), share of its duration done, and how long it is
    past its end time (the engine ends a due simulation within a second; much later means the engine is down)."""

    remaining_s: float
    done: float
    overdue_s: float

    def left(self) -> str:
        """"13 s left" (whole seconds, rounded up); "ending now" once due."""
        if self.remaining_s <= 0:
            return "ending now"
        return f"{fmt_duration_ms(math.ceil(self.remaining_s) * 1000.0)} left"


def countdown(started_at: datetime, ends_at: datetime, now: datetime) -> Countdown:
    """The countdown of a simulation from its start and end times."""
    total = max(1e-3, (ends_at - started_at).total_seconds())
    remaining = (ends_at - now).total_seconds()
    return Countdown(remaining_s=max(0.0, remaining), done=min(1.0, max(0.0, 1.0 - remaining / total)),
                     overdue_s=max(0.0, -remaining))


def active_banner(simulations: Sequence[Simulation], now: datetime) -> str | None:
    """One line naming each active simulation with its target and time left, soonest end first; None when none
    is active."""
    active = sorted((r for r in simulations if r.status == "active"), key=lambda r: r.ends_at)
    if not active:
        return None
    parts = [f"{simulation_kind(r.kind).lower()} on {simulation_target(r.kind, r.target)} "
             f"({countdown(r.started_at, r.ends_at, now).left()})" for r in active]
    head = "1 failure simulation is active" if len(parts) == 1 else f"{len(parts)} failure simulations are active"
    return f"{head}: " + "; ".join(parts) + "."


HISTORY_COLUMNS = ["id", "kind", "target", "parameters", "status", "effect", "started", "ended"]


def simulation_history(simulations: Sequence[Simulation]) -> pd.DataFrame:
    """db.queries.simulations as the columns the history table shows, in words."""
    rows = [[r.id, simulation_kind(r.kind), simulation_target(r.kind, r.target), simulation_params(r.kind, r.params),
             simulation_label(r.status), simulation_effect(r.status, r.effect), r.started_at, r.ended_at]
            for r in simulations]
    out = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    for column in ("started", "ended"):
        out[column] = pd.to_datetime(out[column], utc=True)
    return out
