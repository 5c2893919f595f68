"""The silences in effect, held in memory: what the evaluator matches alerts against without the database.

The book is loaded from the `silences` table at start and after every change (the API's, a simulation's start);
a simulation's end takes effect in memory at once (`ended`), whether or not the database has recorded it yet.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from contract.alerting import SilenceState
from db import alerting as queries
from db.alerting_models import SilenceRow
from engine.clock import Clock

__all__ = ["Silence", "SilenceBook", "SilenceMatch", "silence_state"]


def silence_state(starts_at: datetime, ends_at: datetime, now: datetime) -> SilenceState:
    """Whether a silence is in effect at now, later, or no more."""
    if ends_at <= now:
        return SilenceState.EXPIRED
    return SilenceState.PENDING if starts_at > now else SilenceState.ACTIVE


@dataclass(frozen=True)
class Silence:
    """A silence as the evaluator matches it: a service, a rule, or both, between two instants."""

    id: int
    service: str | None
    rule_id: int | None
    starts_at: datetime
    ends_at: datetime
    simulation_id: int | None = None

    @classmethod
    def of_row(cls, row: SilenceRow) -> Silence:
        """The silence a stored row describes."""
        return cls(row.id, row.service_name, row.rule_id, row.starts_at, row.ends_at, row.simulation_id)


@dataclass(frozen=True)
class SilenceMatch:
    """How an alert is silenced now: at all, and whether by a failure simulation's silence (expected)."""

    silenced: bool
    expected: bool


NOT_SILENCED = SilenceMatch(False, False)


class SilenceBook:
    """The current silences indexed by what they match; replaced whole on every change (readers take no lock)."""

    def __init__(self, clock: Clock, sessions: sessionmaker[Session] | None = None) -> None:
        self._clock = clock
        self._sessions = sessions
        self._lock = threading.Lock()
        self._index: dict[tuple[str | None, int | None], tuple[Silence, ...]] = {}
        self._ended: dict[int, datetime] = {}  # simulation id -> when it ended (its silences end then, whatever the DB)

    def reload(self) -> None:
        """Read the silences not ended yet from the database (at start and after every change)."""
        if self._sessions is None:
            return
        now = self._clock.now()
        with self._sessions() as session:
            rows = queries.current_silences(session, now)
            self.replace(Silence.of_row(r) for r in rows)

    def replace(self, silences: Iterable[Silence]) -> None:
        """Install these silences (reload does; tests hand some in)."""
        with self._lock:
            index: dict[tuple[str | None, int | None], list[Silence]] = {}
            for given in silences:
                end = self._ended.get(given.simulation_id) if given.simulation_id is not None else None
                # ended in memory, its row not written yet
                s = replace(given, ends_at=end) if end is not None and end < given.ends_at else given
                index.setdefault((s.service, s.rule_id), []).append(s)
            self._index = {k: tuple(v) for k, v in index.items()}

    def ended(self, simulation_id: int, at: datetime) -> None:
        """A simulation ended at `at`: its silences end then, from now on, whatever the database holds."""
        with self._lock:
            self._ended[simulation_id] = at
            if len(self._ended) > 1000:  # its rows are written by then; keep the map bounded
                del self._ended[next(iter(self._ended))]
            silences = [s for group in self._index.values() for s in group]
        self.replace(silences)

    def match(self, rule_id: int, service: str | None, now: datetime) -> SilenceMatch:
        """Whether an alert of this rule and service is silenced at now (and by a simulation's silence)."""
        index = self._index
        if not index:
            return NOT_SILENCED
        silenced = expected = False
        for key in ((service, rule_id), (service, None), (None, rule_id)):
            for s in index.get(key, ()):
                if s.starts_at <= now < s.ends_at:
                    silenced = True
                    expected = expected or s.simulation_id is not None
        return SilenceMatch(silenced, expected) if silenced else NOT_SILENCED

    def all(self) -> list[Silence]:
        """Every silence held (active and pending), by id."""
        return sorted((s for group in self._index.values() for s in group), key=lambda s: s.id)
