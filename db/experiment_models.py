"""SQLAlchemy 2 models of experiments: the stored documents, their earlier versions and the runs.

Their tables join db.models.Base's metadata when the db package is imported (db/__init__.py imports this module).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.models import TS, Base

__all__ = ["ExperimentRow", "ExperimentRunRow", "ExperimentVersionRow"]


class ExperimentRow(Base):
    """A stored experiment: its latest document and version."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS)


class ExperimentVersionRow(Base):
    """One saved version of an experiment's document (the latest included)."""

    __tablename__ = "experiment_versions"

    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)
    saved_at: Mapped[datetime] = mapped_column(TS)


class ExperimentRunRow(Base):
    """One run of an experiment: the document it ran, where it is, its verdict and result
    (result: {thresholds, steadyState, seconds, events})."""

    __tablename__ = "experiment_runs"
    __table_args__ = (Index("ix_experiment_runs_experiment", "experiment_id", "id"),
                      Index("ix_experiment_runs_started", "started_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id", ondelete="SET NULL"))
    experiment_name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20))
    phase: Mapped[str] = mapped_column(String(20))
    verdict: Mapped[str | None] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(TS)
    ended_at: Mapped[datetime | None] = mapped_column(TS)
    load_test_id: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
