"""Stored experiments, their versions and runs as contract models. A Session first, never a commit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from contract.experiments import (
    ExperimentDocument,
    ExperimentEventKind,
    ExperimentEventOut,
    ExperimentOut,
    ExperimentRunDetailOut,
    ExperimentRunOut,
    ExperimentRunStatus,
    ExperimentSecondOut,
    ProbeResultOut,
    RunPhase,
    ThresholdResultOut,
    Verdict,
)
from contract.incidents import TimelineKind
from db.experiment_models import ExperimentRow, ExperimentRunRow, ExperimentVersionRow
from db.timeline import Span, service_events

__all__ = [
    "add_experiment",
    "add_run",
    "by_name",
    "delete_experiment",
    "experiment_out",
    "get_experiment",
    "get_run",
    "list_experiments",
    "list_runs",
    "mark_runs_interrupted",
    "run_detail_out",
    "run_out",
    "save_run",
    "update_experiment",
    "versions",
    "with_service_events",
]

_KINDS = {TimelineKind.BREAKER: ExperimentEventKind.BREAKER, TimelineKind.ALERT: ExperimentEventKind.ALERT,
          TimelineKind.HEALTH: ExperimentEventKind.HEALTH}
PER_SOURCE = 200


def experiment_out(row: ExperimentRow) -> ExperimentOut:
    """A stored experiment as the API shows it."""
    return ExperimentOut(id=row.id, name=row.name, version=row.version,
                         document=ExperimentDocument.model_validate(row.document),
                         createdAt=row.created_at.isoformat(), updatedAt=row.updated_at.isoformat())


def get_experiment(session: Session, experiment_id: int) -> ExperimentRow | None:
    """One experiment by id."""
    return session.get(ExperimentRow, experiment_id)


def by_name(session: Session, name: str) -> ExperimentRow | None:
    """One experiment by its unique name."""
    return session.scalars(select(ExperimentRow).where(ExperimentRow.name == name)).first()


def list_experiments(session: Session, limit: int) -> list[ExperimentRow]:
    """Experiments, last changed first."""
    query = select(ExperimentRow).order_by(ExperimentRow.updated_at.desc(), ExperimentRow.id.desc()).limit(limit)
    return list(session.scalars(query))


def add_experiment(session: Session, document: ExperimentDocument, now: datetime) -> ExperimentRow:
    """A new experiment at version 1 (its first version kept)."""
    doc = document.model_dump(mode="json")
    row = ExperimentRow(name=document.name, version=1, document=doc, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    session.add(ExperimentVersionRow(experiment_id=row.id, version=1, document=doc, saved_at=now))
    return row


def update_experiment(session: Session, row: ExperimentRow, document: ExperimentDocument,
                      now: datetime) -> ExperimentRow:
    """The next version of an experiment (the earlier ones kept)."""
    doc = document.model_dump(mode="json")
    row.version += 1
    row.name, row.document, row.updated_at = document.name, doc, now
    session.add(ExperimentVersionRow(experiment_id=row.id, version=row.version, document=doc, saved_at=now))
    session.flush()
    return row


def versions(session: Session, experiment_id: int) -> list[ExperimentVersionRow]:
    """Every saved version of an experiment, newest first."""
    t = ExperimentVersionRow
    return list(session.scalars(select(t).where(t.experiment_id == experiment_id).order_by(t.version.desc())))


def delete_experiment(session: Session, experiment_id: int) -> bool:
    """Delete an experiment and its versions (its runs stay, unlinked); False when there was none."""
    result = session.execute(delete(ExperimentRow).where(ExperimentRow.id == experiment_id))
    return bool(getattr(result, "rowcount", 0))


def add_run(session: Session, experiment: ExperimentRow, now: datetime) -> ExperimentRunRow:
    """A new run of the experiment's current document: running, before the load."""
    row = ExperimentRunRow(experiment_id=experiment.id, experiment_name=experiment.name, version=experiment.version,
                           document=experiment.document, status=ExperimentRunStatus.RUNNING.value,
                           phase=RunPhase.BEFORE.value, started_at=now, result={})
    session.add(row)
    session.flush()
    return row


def save_run(session: Session, run_id: int, values: dict[str, Any]) -> None:
    """Write a run's changing columns (status, phase, verdict, reason, ended_at, load_test_id, result)."""
    session.execute(update(ExperimentRunRow).where(ExperimentRunRow.id == run_id).values(**values))


def get_run(session: Session, run_id: int) -> ExperimentRunRow | None:
    """One run by id."""
    return session.get(ExperimentRunRow, run_id)


def list_runs(session: Session, limit: int, experiment_id: int | None = None) -> list[ExperimentRunRow]:
    """Runs, newest first; of one experiment when given."""
    t = ExperimentRunRow
    query = select(t).order_by(t.id.desc()).limit(limit)
    if experiment_id is not None:
        query = query.where(t.experiment_id == experiment_id)
    return list(session.scalars(query))


def mark_runs_interrupted(session: Session, now: datetime) -> int:
    """Runs left running by the last stop become interrupted, ended now; how many."""
    t = ExperimentRunRow
    result = session.execute(update(t).where(t.status == ExperimentRunStatus.RUNNING.value).values(
        status=ExperimentRunStatus.INTERRUPTED.value, phase=RunPhase.DONE.value, ended_at=now,
        reason="the engine stopped while it ran"))
    return int(getattr(result, "rowcount", 0))


def run_out(row: ExperimentRunRow) -> ExperimentRunOut:
    """A stored run without its seconds and events."""
    result = row.result or {}
    return ExperimentRunOut(
        id=row.id, experimentId=row.experiment_id, experimentName=row.experiment_name, version=row.version,
        status=ExperimentRunStatus(row.status), phase=RunPhase(row.phase),
        verdict=None if row.verdict is None else Verdict(row.verdict), reason=row.reason,
        startedAt=row.started_at.isoformat(), endedAt=None if row.ended_at is None else row.ended_at.isoformat(),
        loadTestId=row.load_test_id,
        thresholds=[ThresholdResultOut.model_validate(t) for t in result.get("thresholds", [])],
        steadyState=[ProbeResultOut.model_validate(p) for p in result.get("steadyState", [])],
    )


def run_detail_out(row: ExperimentRunRow) -> ExperimentRunDetailOut:
    """A stored run with its document, seconds and events."""
    result = row.result or {}
    return ExperimentRunDetailOut(
        **run_out(row).model_dump(), document=ExperimentDocument.model_validate(row.document),
        seconds=[ExperimentSecondOut.model_validate(s) for s in result.get("seconds", [])],
        events=[ExperimentEventOut.model_validate(e) for e in result.get("events", [])],
    )


def with_service_events(session: Session, run: ExperimentRunDetailOut, now: datetime) -> ExperimentRunDetailOut:
    """The run with its load service's breaker transitions, alert state changes and health changes over the run's
    span merged into its events (atS from the load's start, as the run's own events)."""
    started = datetime.fromisoformat(run.startedAt)
    ended = now if run.endedAt is None else datetime.fromisoformat(run.endedAt)
    own = run.events
    # every own event carries its at and atS: the load's start is their difference (the run's start without events)
    origin = datetime.fromisoformat(own[0].at) - timedelta(seconds=own[0].atS) if own else started
    span = Span(None, run.document.load.service, None, started, ended, timedelta(0))
    found = [ExperimentEventOut(at=e.at, atS=round((datetime.fromisoformat(e.at) - origin).total_seconds(), 3),
                                kind=_KINDS[e.kind], title=e.title, detail=e.detail)
             for e in service_events(session, span, PER_SOURCE) if e.kind in _KINDS]
    if not found:
        return run
    events = sorted([*own, *found], key=lambda e: datetime.fromisoformat(e.at))
    return run.model_copy(update={"events": events})
