"""Fixtures the engine's unit tests share: a fake clock and a batch writer on the clean test database."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.clock import FakeClock
from engine.store.writer import BatchWriter


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test advances it."""
    return FakeClock()


@pytest.fixture
def writer(sessions: sessionmaker[Session], clock: FakeClock) -> BatchWriter:
    """A batch writer on the clean database, not started: a test flushes it when it wants rows written."""
    return BatchWriter(sessions, clock)
