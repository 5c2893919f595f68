"""A database that accepts connections and never answers cannot hang the chaos manager: a database-overload start
gives up within its connect timeout, and stop-all meanwhile answers at once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from contract.chaos import Intensity, SimulationOut, SimulationStatus
from contract.errors import Conflict, Unavailable
from db.models import Service
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


def test_a_start_under_way_when_stop_all_runs_ends_once_it_has_started(runtime: Runtime):
    """Stop-all does not wait for a start, and what that start arms does not outlive the stop-all."""
    with runtime.sessions.begin() as session:
        session.add(Service(name="shop", managed=True, launch_command="true {port}"))
    runtime.reload_registry()
    release = threading.Event()

    def slow_kill(service: str) -> str:
        release.wait(10)
        return "http://127.0.0.1:1"

    chaos = ChaosManager(runtime.sessions, runtime.registry, runtime.faults, runtime.writer, runtime.clock,
                         conninfo=runtime.database.conninfo, kill=slow_kill)
    outcome: list[SimulationOut] = []
    starter = threading.Thread(target=lambda: outcome.append(chaos.service_failure("shop", 60_000, mode="kill")),
                               daemon=True)
    starter.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    assert chaos.stop_all() == 0  # nothing has started yet
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(Conflict, match="starting"):  # the same kind on the same target is still refused meanwhile
        chaos.service_failure("shop", 1000, mode="kill")
    release.set()
    starter.join(5)
    [answer] = outcome
    assert answer.status is SimulationStatus.STOPPED
    assert chaos.active_count() == 0
    assert [s.status for s in chaos.list()] == [SimulationStatus.STOPPED]
