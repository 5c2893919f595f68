"""Alert rules, alerts and silences: a Session first, rows out, never a commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, and_, delete, func, select, update
from sqlalchemy.orm import Session

from db.alerting_models import AlertChannelRow, AlertRow, AlertRuleRow, SilenceRow
from db.models import Simulation

__all__ = [
    "RuleValues",
    "add_rule",
    "add_silence",
    "alert_rule",
    "current_silences",
    "delete_rule",
    "delete_simulation_silences",
    "end_silences_of_ended_simulations",
    "end_simulation_silences",
    "expire_silence",
    "list_rules",
    "missing_channels",
    "open_alerts",
    "rule_id_named",
    "silence",
    "silences",
    "update_rule",
]

# the columns a rule request sets (see engine.api.alerts)
RuleValues = dict[str, object]
_TICK = timedelta(microseconds=1)


def list_rules(session: Session) -> Sequence[AlertRuleRow]:
    """Every alert rule, by id."""
    return session.scalars(select(AlertRuleRow).order_by(AlertRuleRow.id)).all()


def alert_rule(session: Session, rule_id: int) -> AlertRuleRow | None:
    """One rule, if it exists."""
    return session.get(AlertRuleRow, rule_id)


def rule_id_named(session: Session, name: str) -> int | None:
    """The id of the rule called name, if any."""
    return session.scalar(select(AlertRuleRow.id).where(AlertRuleRow.name == name))


def missing_channels(session: Session, ids: Iterable[int]) -> list[int]:
    """The ids among `ids` that name no alert channel, in the order given."""
    wanted = list(ids)
    if not wanted:
        return []
    found = set(session.scalars(select(AlertChannelRow.id).where(AlertChannelRow.id.in_(wanted))))
    return [i for i in wanted if i not in found]


def add_rule(session: Session, values: RuleValues) -> AlertRuleRow:
    """A new rule (flushed: its id and created_at are set)."""
    row = AlertRuleRow(**values)
    session.add(row)
    session.flush()
    session.refresh(row)
    return row


def update_rule(session: Session, row: AlertRuleRow, values: RuleValues, at: datetime) -> AlertRuleRow:
    """The rule with every column replaced by values."""
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = at
    session.flush()
    return row


def delete_rule(session: Session, rule_id: int) -> bool:
    """Delete a rule; False when it did not exist. Its alerts stay (the evaluator resolves them)."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(AlertRuleRow).where(AlertRuleRow.id == rule_id))
    return result.rowcount > 0


def open_alerts(session: Session) -> Sequence[AlertRow]:
    """Alerts pending or firing when they were last written (what a starting engine continues)."""
    return session.scalars(select(AlertRow).where(AlertRow.state.in_(("pending", "firing")))
                           .order_by(AlertRow.active_at)).all()


def current_silences(session: Session, now: datetime) -> Sequence[SilenceRow]:
    """Silences not ended by now: active and pending ones."""
    return session.scalars(select(SilenceRow).where(SilenceRow.ends_at > now).order_by(SilenceRow.id)).all()


def silences(session: Session, now: datetime, state: str | None, limit: int) -> Sequence[SilenceRow]:
    """Silences, newest first; state pending, active or expired as of now (None: all)."""
    query = select(SilenceRow).order_by(SilenceRow.id.desc()).limit(limit)
    if state == "pending":
        query = query.where(SilenceRow.starts_at > now)
    elif state == "active":
        query = query.where(SilenceRow.starts_at <= now, SilenceRow.ends_at > now)
    elif state == "expired":
        query = query.where(SilenceRow.ends_at <= now)
    return session.scalars(query).all()


def silence(session: Session, silence_id: int) -> SilenceRow | None:
    """One silence, if it exists."""
    return session.get(SilenceRow, silence_id)


def add_silence(session: Session, *, service: str | None, rule_id: int | None, starts_at: datetime,
                ends_at: datetime, comment: str, created_by: str | None,
                simulation_id: int | None = None) -> SilenceRow:
    """A new silence (flushed: its id is set)."""
    row = SilenceRow(service_name=service, rule_id=rule_id, starts_at=starts_at, ends_at=ends_at, comment=comment,
                     created_by=created_by, simulation_id=simulation_id)
    session.add(row)
    session.flush()
    return row


def expire_silence(session: Session, row: SilenceRow, now: datetime) -> SilenceRow:
    """The silence ended now; one that had not started yet starts a microsecond before (an end follows a start)."""
    row.ends_at = now
    if row.starts_at >= now:
        row.starts_at = now - _TICK
    session.flush()
    return row


def end_simulation_silences(session: Session, simulation_id: int, at: datetime) -> int:
    """End the silences of a simulation at `at` (when it ended); returns how many were still running. One that
    began at `at` itself begins a microsecond before (an end follows a start)."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(SilenceRow)
        .where(SilenceRow.simulation_id == simulation_id, SilenceRow.ends_at > at)
        .values(ends_at=at, starts_at=func.least(SilenceRow.starts_at, at - _TICK)))
    return result.rowcount


def delete_simulation_silences(session: Session, simulation_id: int) -> None:
    """Remove the silences of a simulation that never started."""
    session.execute(delete(SilenceRow).where(SilenceRow.simulation_id == simulation_id))


def end_silences_of_ended_simulations(session: Session, now: datetime) -> int:
    """End, as of now, the silences of simulations no longer active (a stop cut them off); returns how many."""
    ended = select(Simulation.id).where(Simulation.status != "active")
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(SilenceRow)
        .where(and_(SilenceRow.simulation_id.in_(ended), SilenceRow.ends_at > now))
        .values(ends_at=now, starts_at=func.least(SilenceRow.starts_at, now - _TICK)))
    return result.rowcount
