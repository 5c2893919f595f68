"""The leader's cluster upkeep: the work of engines gone without a clean stop is marked interrupted, and rows of
engines silent for a day are forgotten."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from db import cluster, queries
from engine.clock import Clock
from engine.store.logs import event_logger
from engine.store.outage import UNAVAILABLE

__all__ = ["FORGET_AFTER", "sweep_gone_engines"]

log = event_logger("cluster")
FORGET_AFTER = timedelta(days=1)  # an engine row this long without a heartbeat is deleted


def sweep_gone_engines(sessions: sessionmaker[Session], clock: Clock, lease_s: float) -> tuple[int, int]:
    """Mark the running load tests and active simulations of gone engines interrupted (rows no engine claims are
    left to the next start, as before there were several engines): (load tests, simulations)."""
    try:
        with sessions.begin() as session:
            tests, sims = queries.mark_interrupted(session, clock.now(), lease_s, unowned=False)
            cluster.forget_engines(session, FORGET_AFTER)
    except UNAVAILABLE:
        return 0, 0  # the database probe and the writer say so; the next round tries again
    if tests or sims:
        log.warning("marked %d load test(s) and %d simulation(s) of engines gone without a clean stop interrupted",
                    tests, sims)
    return tests, sims
