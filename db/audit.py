"""The audit trail's reads and its retention: a Session first, never a commit.

audit_log is append-only: a trigger refuses UPDATE, DELETE and TRUNCATE unless the transaction set
`mm.audit_retention` on, which only delete_audit_older does (storage maintenance, past AUDIT_RETENTION_DAYS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, select, text
from sqlalchemy.orm import Session

from db.models import AuditRow

__all__ = ["AuditFilter", "delete_audit_older", "list_audit"]


@dataclass(frozen=True)
class AuditFilter:
    """Which audit rows: exact actor and action, a status (403) or class (4xx), a time range, rows below a cursor."""

    limit: int
    actor: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None


def list_audit(session: Session, f: AuditFilter) -> list[AuditRow]:
    """Matching rows, newest first (by id: the order they were written)."""
    query = select(AuditRow)
    if f.actor is not None:
        query = query.where(AuditRow.actor == f.actor)
    if f.action is not None:
        query = query.where(AuditRow.action == f.action)
    if f.outcome is not None:
        if f.outcome.endswith("xx"):
            low = int(f.outcome[0]) * 100
            query = query.where(AuditRow.outcome >= low, AuditRow.outcome < low + 100)
        else:
            query = query.where(AuditRow.outcome == int(f.outcome))
    if f.since is not None:
        query = query.where(AuditRow.at >= f.since)
    if f.until is not None:
        query = query.where(AuditRow.at < f.until)
    if f.before is not None:
        query = query.where(AuditRow.id < f.before)
    return list(session.scalars(query.order_by(AuditRow.id.desc()).limit(f.limit)))


def delete_audit_older(session: Session, cutoff: datetime) -> int:
    """Delete rows older than cutoff: the one deletion the trigger allows (the setting lasts for this
    transaction only)."""
    session.execute(text("SELECT set_config('mm.audit_retention', 'on', true)"))
    result: CursorResult[Any] = session.execute(delete(AuditRow).where(AuditRow.at < cutoff))  # type: ignore[assignment]
    session.execute(text("SELECT set_config('mm.audit_retention', 'off', true)"))
    return result.rowcount
