"""SQLAlchemy models of the cluster's tables: the engines and the leader's single row."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Integer, SmallInteger, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from db.models import TS, Base

__all__ = ["ClusterLeaderRow", "EngineRow"]


class EngineRow(Base):
    """One engine start: where it answers and its heartbeat, on the database's clock."""

    __tablename__ = "engines"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    api_url: Mapped[str | None] = mapped_column(String(500))
    proxy_url: Mapped[str | None] = mapped_column(String(500))
    started_at: Mapped[datetime] = mapped_column(TS)
    heartbeat_at: Mapped[datetime] = mapped_column(TS, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(TS)


class ClusterLeaderRow(Base):
    """The single row (id 1): the fencing term, the leader and when it last confirmed its lock."""

    __tablename__ = "cluster_leader"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    term: Mapped[int] = mapped_column(BigInteger)
    engine_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    elected_at: Mapped[datetime | None] = mapped_column(TS)
    confirmed_at: Mapped[datetime | None] = mapped_column(TS)
