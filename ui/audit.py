"""The Audit page's building blocks: its filters as an AuditQuery and the audit rows as the table shows them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from contract.audit import AuditEntryOut

__all__ = ["ANY", "OUTCOMES", "PERIODS", "ROW_LIMITS", "audit_query", "audit_table"]

ANY = "any"
# a class of statuses or one of the refusals worth finding on their own
OUTCOMES = (ANY, "2xx", "4xx", "5xx", "400", "401", "403", "404", "409", "422", "429")
PERIODS: dict[str, timedelta | None] = {
    "last hour": timedelta(hours=1), "last 24 hours": timedelta(days=1), "last 7 days": timedelta(days=7),
    "last 30 days": timedelta(days=30), "all kept": None,
}
ROW_LIMITS = (100, 500, 1000, 10_000)


def audit_query(actor: str, action: str, outcome: str, period: str, limit: int, now: datetime) -> dict[str, Any]:
    """The page's filters as GET /api/audit's query (empty text and `any` filter nothing)."""
    span = PERIODS[period]
    return {
        "actor": actor.strip() or None,
        "action": action.strip() or None,
        "outcome": None if outcome == ANY else outcome,
        "since": None if span is None else (now - span).isoformat(),
        "limit": limit,
    }


def audit_table(entries: Sequence[AuditEntryOut]) -> pd.DataFrame:
    """Audit rows as the table's columns; who is `anonymous` for a call without a valid token."""
    return pd.DataFrame({
        "time": pd.to_datetime(pd.Index([e.at for e in entries], dtype=object), utc=True),
        "who": [e.actor if e.actor is not None else "anonymous" for e in entries],
        "role": [e.actorRole or "" for e in entries],
        "client": [e.client or "" for e in entries],
        "call": [f"{e.method} {e.route}" for e in entries],
        "action": [e.action or "" for e in entries],
        "target": [e.target or "" for e in entries],
        "outcome": [e.outcome for e in entries],
        "error": [e.outcomeText or "" for e in entries],
    })
