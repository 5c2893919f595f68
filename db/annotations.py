"""Reads for the Metrics page beyond db.series: what happened in a time range (breaker transitions, failure
simulations, scaling, load tests) to mark on its charts, and every service name that has metrics kept.

Each read takes [start, end) and the chosen services, so a week of a flapping breaker is not read for a 5-minute
chart, and keeps the newest `limit` events of a kind (Annotations.truncated says which kinds hit it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import or_, select, text
from sqlalchemy.orm import Session

from db import queries
from db.models import BreakerTransitionRow, LoadTest, ScalingEvent, Simulation

__all__ = [
    "BREAKER_COLUMNS",
    "LIMIT",
    "LOAD_TEST_COLUMNS",
    "SCALING_COLUMNS",
    "Annotations",
    "breaker_changes",
    "load_test_runs",
    "metric_service_names",
    "read_annotations",
    "scaling_changes",
]

LIMIT = 500
BREAKER_COLUMNS = ["at", "service_name", "from_state", "to_state", "reason"]
SCALING_COLUMNS = ["timestamp", "service_name", "direction", "from_count", "to_count", "source", "reason"]
LOAD_TEST_COLUMNS = ["id", "status", "target_service", "requests_per_second", "concurrent_users", "duration_s",
                     "started_at", "ended_at"]

# one step of a loose index scan per name over the rollup's primary key (service_name, minute): a few index probes
# instead of reading a week of rows to find 20 distinct names
_NAMES = """
WITH RECURSIVE names(name) AS (
    (SELECT service_name FROM metrics_1m ORDER BY service_name LIMIT 1)
    UNION ALL
    SELECT (SELECT m.service_name FROM metrics_1m m WHERE m.service_name > names.name
            ORDER BY m.service_name LIMIT 1)
    FROM names WHERE names.name IS NOT NULL
)
SELECT name FROM names WHERE name IS NOT NULL
"""


@dataclass(frozen=True)
class Annotations:
    """The events of a time range, oldest first; `truncated` names the kinds that had more than the limit."""

    breakers: pd.DataFrame  # BREAKER_COLUMNS
    simulations: list[Simulation]
    scaling: pd.DataFrame  # SCALING_COLUMNS, scale-ups and scale-downs only
    load_tests: pd.DataFrame  # LOAD_TEST_COLUMNS
    truncated: frozenset[str] = field(default_factory=frozenset)


def metric_service_names(session: Session) -> list[str]:
    """Every service name with rows in the 1-minute rollup, registered or not, in byte order."""
    # a removed service's history stays until the retention drops it
    return [name for (name,) in session.execute(text(_NAMES)).all()]


def _newest(rows: Sequence[Any], columns: list[str], limit: int) -> tuple[pd.DataFrame, bool]:
    """The newest `limit` rows of a newest-first query for limit + 1, oldest first, and whether more exist."""
    frame = pd.DataFrame(rows[:limit][::-1], columns=columns)
    return frame, len(rows) > limit


def breaker_changes(session: Session, start: datetime, end: datetime, services: Sequence[str],
                    limit: int = LIMIT) -> tuple[pd.DataFrame, bool]:
    """Breaker transitions of these services in [start, end): the newest `limit`, oldest first; and if more."""
    t = BreakerTransitionRow
    query = (select(t.at, t.service_name, t.from_state, t.to_state, t.reason)
             .where(t.service_name.in_(list(services)), t.at >= start, t.at < end)
             .order_by(t.at.desc(), t.id.desc()).limit(limit + 1))
    return _newest(session.execute(query).all(), BREAKER_COLUMNS, limit)


def scaling_changes(session: Session, start: datetime, end: datetime, services: Sequence[str],
                    limit: int = LIMIT) -> tuple[pd.DataFrame, bool]:
    """Scale-ups and scale-downs of these services in [start, end): the newest `limit`, oldest first; and if more."""
    # the autoscaler's "no change" periods are not events
    e = ScalingEvent
    query = (select(e.timestamp, e.service_name, e.direction, e.from_count, e.to_count, e.source, e.reason)
             .where(e.service_name.in_(list(services)), e.direction.in_(["up", "down"]), e.timestamp >= start,
                    e.timestamp < end)
             .order_by(e.timestamp.desc(), e.id.desc()).limit(limit + 1))
    return _newest(session.execute(query).all(), SCALING_COLUMNS, limit)


def load_test_runs(session: Session, start: datetime, end: datetime, services: Sequence[str],
                   limit: int = LIMIT) -> tuple[pd.DataFrame, bool]:
    """Load tests running in [start, end) on these services or none named: newest `limit`, oldest first; more?"""
    # a run with no end yet is still running (or was cut off)
    r = LoadTest
    query = (select(r.id, r.status, r.target_service, r.requests_per_second, r.concurrent_users, r.duration_s,
                    r.started_at, r.ended_at)
             .where(r.started_at < end, or_(r.ended_at.is_(None), r.ended_at >= start),
                    or_(r.target_service.is_(None), r.target_service.in_(list(services))))
             .order_by(r.started_at.desc(), r.id.desc()).limit(limit + 1))
    return _newest(session.execute(query).all(), LOAD_TEST_COLUMNS, limit)


def read_annotations(session: Session, start: datetime, end: datetime, services: Sequence[str],
                     limit: int = LIMIT) -> Annotations:
    """Every kind of event of [start, end) for these services (simulations from db.queries.simulations)."""
    # a simulation without a target (every service, the engine, the database) concerns every service
    breakers, more_breakers = breaker_changes(session, start, end, services, limit)
    scaling, more_scaling = scaling_changes(session, start, end, services, limit)
    runs, more_runs = load_test_runs(session, start, end, services, limit)
    chosen = set(services)
    recent = queries.simulations(session, since=start, limit=limit + 1)  # newest first, in effect since `start`
    sims = [r for r in recent[:limit] if r.started_at < end and (r.target is None or r.target in chosen)]
    truncated = {kind for kind, more in (("breakers", more_breakers), ("scaling", more_scaling),
                                         ("load_tests", more_runs), ("simulations", len(recent) > limit)) if more}
    return Annotations(breakers, sims[::-1], scaling, runs, frozenset(truncated))
