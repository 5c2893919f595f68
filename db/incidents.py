"""Incidents, their notes and their figures: a Session first, values out, never a commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from db.alerting_models import AlertRow, IncidentNoteRow, IncidentRow

__all__ = [
    "IncidentFigures",
    "acknowledge",
    "add_note",
    "alert_states",
    "firing_alerts",
    "get_incident",
    "list_incidents",
    "open_incidents",
    "stats",
]


@dataclass(frozen=True)
class IncidentFigures:
    """Incidents started in a window: how many, mean seconds to acknowledge and to resolve (None when none)."""

    incidents: int
    mtta_s: float | None
    mttr_s: float | None


def _with_latest_note() -> Select[Any]:
    latest = (select(IncidentNoteRow.note).where(IncidentNoteRow.incident_id == IncidentRow.id)
              .order_by(IncidentNoteRow.at.desc(), IncidentNoteRow.id.desc()).limit(1).scalar_subquery())
    return select(IncidentRow, latest)


def list_incidents(session: Session, status: str | None, service: str | None,
                   limit: int) -> list[tuple[IncidentRow, str | None]]:
    """Incidents newest first, each with its latest note."""
    query = _with_latest_note()
    if status is not None:
        query = query.where(IncidentRow.status == status)
    if service is not None:
        query = query.where(IncidentRow.service_name == service)
    rows = session.execute(query.order_by(IncidentRow.started_at.desc(), IncidentRow.id).limit(limit)).all()
    return [(row, note) for row, note in rows]


def get_incident(session: Session, incident_id: uuid.UUID) -> tuple[IncidentRow, str | None] | None:
    """One incident with its latest note, None when unknown."""
    found = session.execute(_with_latest_note().where(IncidentRow.id == incident_id)).first()
    return None if found is None else (found[0], found[1])


def open_incidents(session: Session) -> list[IncidentRow]:
    """Every open incident, oldest first."""
    return list(session.scalars(select(IncidentRow).where(IncidentRow.status == "open")
                                .order_by(IncidentRow.started_at)))


def alert_states(session: Session, fingerprints: Sequence[str]) -> dict[str, tuple[str, datetime | None]]:
    """The recorded state and resolution time of each of these alerts that has a row."""
    if not fingerprints:
        return {}
    rows = session.execute(select(AlertRow.fingerprint, AlertRow.state, AlertRow.resolved_at)
                           .where(AlertRow.fingerprint.in_(set(fingerprints))))
    return {fp: (state, resolved) for fp, state, resolved in rows}


def firing_alerts(session: Session) -> list[tuple[str, str | None]]:
    """The fingerprint and service of every alert recorded as firing."""
    rows = session.execute(select(AlertRow.fingerprint, AlertRow.service_name).where(AlertRow.state == "firing")
                           .order_by(AlertRow.fingerprint))
    return [(fp, service) for fp, service in rows]


def acknowledge(session: Session, incident_id: uuid.UUID, at: datetime, by: str) -> bool:
    """Record the first acknowledgement; False when the incident was acknowledged already."""
    result = session.execute(update(IncidentRow)
                             .where(IncidentRow.id == incident_id, IncidentRow.acknowledged_at.is_(None))
                             .values(acknowledged_at=at, acknowledged_by=by))
    return bool(getattr(result, "rowcount", 0))


def add_note(session: Session, incident_id: uuid.UUID, at: datetime, author: str | None, note: str) -> None:
    """A note on the incident."""
    session.add(IncidentNoteRow(incident_id=incident_id, at=at, author=author, note=note))
    session.flush()


def stats(session: Session, since: datetime, service: str | None) -> IncidentFigures:
    """Incidents started at or after `since` (of one service, or of all when None): count, MTTA and MTTR."""
    to_ack = func.avg(func.extract("epoch", IncidentRow.acknowledged_at - IncidentRow.started_at))
    to_resolve = func.avg(func.extract("epoch", IncidentRow.resolved_at - IncidentRow.started_at))
    query = select(func.count(), to_ack, to_resolve).where(IncidentRow.started_at >= since)
    if service is not None:
        query = query.where(IncidentRow.service_name == service)
    count, mtta, mttr = session.execute(query).one()
    return IncidentFigures(int(count), None if mtta is None else float(mtta), None if mttr is None else float(mttr))
