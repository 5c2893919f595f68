"""The cluster's reads: the engines with liveness judged on the database's clock, the leader, and which engines
are live (for marking the work of gone ones interrupted). Session first, never commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, select
from sqlalchemy.orm import Session

from db.cluster_models import ClusterLeaderRow, EngineRow

__all__ = ["ClusterView", "EngineRecord", "cluster_view", "forget_engines", "is_live", "live_count", "live_engine_ids"]


@dataclass(frozen=True)
class EngineRecord:
    """One engine row as read, with its liveness and heartbeat age on the database's clock."""

    id: uuid.UUID
    name: str
    host: str
    pid: int
    api_url: str | None
    proxy_url: str | None
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    heartbeat_age_s: float
    live: bool
    leader: bool


@dataclass(frozen=True)
class ClusterView:
    """Every engine (newest start first), the leader while its lock is confirmed within the lease, its term."""

    read_at: datetime
    lease_s: float
    leader_id: uuid.UUID | None
    term: int | None
    engines: list[EngineRecord]


def is_live(lease_s: float) -> ColumnElement[bool]:
    """An engine row is live: not stopped, and its last heartbeat younger than the lease (database time)."""
    return and_(EngineRow.stopped_at.is_(None), EngineRow.heartbeat_at > func.now() - timedelta(seconds=lease_s))


def live_engine_ids(lease_s: float) -> Select[Any]:
    """The ids of the live engines, as a subquery for `not_in`."""
    return select(EngineRow.id).where(is_live(lease_s))


def live_count(session: Session, lease_s: float) -> int:
    """How many engines are live now."""
    return int(session.scalar(select(func.count()).select_from(EngineRow).where(is_live(lease_s))) or 0)


def cluster_view(session: Session, lease_s: float) -> ClusterView:
    """The engines and the leader, judged now on the database's clock."""
    now = session.scalar(select(func.now()))
    assert now is not None
    row = session.get(ClusterLeaderRow, 1)
    leading = (row is not None and row.engine_id is not None and row.confirmed_at is not None
               and (now - row.confirmed_at).total_seconds() < lease_s)
    leader_id = row.engine_id if leading and row is not None else None
    live = is_live(lease_s).label("live")
    age = func.extract("epoch", func.now() - EngineRow.heartbeat_at).label("age")
    rows = session.execute(select(EngineRow, live, age).order_by(EngineRow.started_at.desc(), EngineRow.id)).all()
    return ClusterView(
        read_at=now, lease_s=lease_s, leader_id=leader_id,
        term=row.term if leading and row is not None else None,
        engines=[EngineRecord(e.id, e.name, e.host, e.pid, e.api_url, e.proxy_url, e.started_at, e.heartbeat_at,
                              e.stopped_at, max(0.0, float(a)), bool(is_up), e.id == leader_id)
                 for e, is_up, a in rows],
    )


def forget_engines(session: Session, older_than: timedelta) -> int:
    """Delete the rows of engines whose last heartbeat is older than this (database time): how many."""
    result = session.execute(delete(EngineRow).where(EngineRow.heartbeat_at < func.now() - older_than))
    return int(result.rowcount)  # type: ignore[attr-defined]
