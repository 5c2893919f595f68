"""A database that accepts connections and never answers cannot hang the chaos manager: a database-overload start
gives up within its connect timeout, and stop-all meanwhile answers at once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from contract.chaos import Intensity, SimulationStatus
from contract.errors import Unavailable
from engine.chaos.pressure import CONNECT_TIMEOUT_S
from engine.chaos.simulations import ChaosManager
from engine.runtime import Runtime


@pytest.fixture
def hung_database() -> Iterator[str]:
    """A libpq URL of a listening socket that accepts and never says a word."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"postgresql://postgres@127.0.0.1:{server.getsockname()[1]}/nothing"


def test_stop_all_answers_while_an_overload_waits_for_a_hung_database(runtime: Runtime, hung_database: str):
    chaos = ChaosManager(runtime.sessions, runtime.registry, runtime.faults, runtime.writer, runtime.clock,
                         conninfo=hung_database)
    outcome: list[BaseException | object] = []

    def start() -> None:
        try:
            outcome.append(chaos.database_overload(60_000, Intensity.HIGH))
        except BaseException as exc:
            outcome.append(exc)

    began = time.monotonic()
    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    time.sleep(0.5)  # the start is waiting for the hung server's first answer
    assert not outcome

    stopper = threading.Thread(target=chaos.stop_all, daemon=True)
    t0 = time.monotonic()
    stopper.start()
    stopper.join(2.0)
    assert not stopper.is_alive(), "stop-all waited for a connection to a hung database"
    assert time.monotonic() - t0 < 1.0

    starter.join(CONNECT_TIMEOUT_S + 5.0)
    assert not starter.is_alive(), "the overload start never gave up on the hung database"
    assert time.monotonic() - began < CONNECT_TIMEOUT_S + 5.0
    [failure] = outcome
    assert isinstance(failure, Unavailable), failure
    [sim] = chaos.list()
    assert sim.status is SimulationStatus.FAILED
    assert chaos.stop_all() == 0
