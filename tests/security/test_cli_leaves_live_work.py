"""`python -m engine migrate` and `user add` run beside a live engine: they change the schema and the users and
nothing the engine owns (its running load test, its active simulations, its instances' open health periods)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import LoadTest, Simulation, User
from engine.__main__ import main


@pytest.fixture
def live_work(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """A running load test and an active simulation, as a live engine holds them."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        session.add(LoadTest(status="running", concurrent_users=5, requests_per_second=10.0, duration_s=60.0,
                             started_at=now))
        session.add(Simulation(kind="memory-leak", target=None, params={"duration": 60000, "rate": 1.0},
                               status="active", started_at=now, ends_at=now + timedelta(minutes=1)))
    return sessions


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("JWT_SECRET", "j" * 40)
    monkeypatch.setenv("ADMIN_PASSWORD", "admin-password-for-tests")


Rows = list[tuple[str, datetime | None]]


def states(sessions: sessionmaker[Session]) -> tuple[Rows, Rows]:
    with sessions() as session:
        tests = [(t.status, t.ended_at) for t in session.scalars(select(LoadTest))]
        sims = [(s.status, s.ended_at) for s in session.scalars(select(Simulation))]
    return tests, sims


def test_migrate_leaves_a_live_engines_work_running(live_work: sessionmaker[Session], cli_env: None):
    assert main(["migrate"]) == 0
    assert states(live_work) == ([("running", None)], [("active", None)])


def test_user_add_leaves_a_live_engines_work_running(live_work: sessionmaker[Session], cli_env: None,
                                                      monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password-1\n"))
    assert main(["user", "add", "carol", "--role", "viewer"]) == 0
    assert states(live_work) == ([("running", None)], [("active", None)])
    with live_work() as session:
        # on an empty user table the first admin is made too, as the engine's own start would
        assert sorted(session.scalars(select(User.username))) == ["admin", "carol"]
