"""Jobs that touch PostgreSQL themselves while it is gone: no exception, one log line each way, and they catch up.

The database "goes away" by pointing the session factory at a port nothing listens on (a real refused
connection), and "comes back" by pointing it at the test database again.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.models import Instance, Service, Simulation
from db.session import make_engine
from engine.chaos.faults import FaultLayer
from engine.chaos.simulations import ChaosManager
from engine.clock import FakeClock
from engine.fleet.demo import demo_command
from engine.fleet.managed import ManagedFleet
from engine.fleet.registry import Registry
from engine.scaling.manager import ScalingManager
from engine.store.outage import DatabaseOutage
from engine.store.writer import BatchWriter
from tests.conftest import free_port_base, wait_for


@pytest.fixture
def dead() -> Iterator[Engine]:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/gone", connect_args={"connect_timeout": 1})
    yield engine
    engine.dispose()


def messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


def test_the_outage_tracker_logs_the_transitions_only_and_paces_retries(caplog):
    clock = FakeClock()
    outage = DatabaseOutage("the job", logging.getLogger("mm.test"), clock, retry_s=1.0)
    caplog.set_level(logging.INFO, "mm.test")
    exc = OperationalError("SELECT 1", {}, Exception("connection refused\nsecond line"))
    assert outage.due()
    for _ in range(5):
        outage.failed(exc)
    assert outage.down and not outage.due()
    clock.advance(1.0)
    assert outage.due()
    outage.succeeded()
    outage.succeeded()
    assert messages(caplog, "mm.test") == [
        "the job waits for the database: Exception: connection refused",
        "the job resumed after 5 failed attempt(s)",
    ]


def test_a_simulation_ending_while_the_database_is_down_ends_now_and_its_row_follows(sessions, dead, caplog):
    caplog.set_level(logging.INFO, "mm.chaos")
    clock = FakeClock()
    faults = FaultLayer(clock)
    chaos = ChaosManager(sessions, Registry(), faults, BatchWriter(sessions, clock), clock, conninfo="")
    sim_id = chaos.network_latency(5.0, 1000.0).id
    live = sessions.kw["bind"]
    sessions.configure(bind=dead)
    clock.advance(1.0)
    ended_at = clock.now()
    assert chaos.expire_due() == 1  # no exception into the job
    assert not faults.armed and chaos.active_count() == 0  # the effect is over at once
    for _ in range(12):  # three seconds of 0.25 s ticks: retried each second, logged once
        clock.advance(0.25)
        chaos.expire_due()
    sessions.configure(bind=live)
    listed = chaos.list()[0]
    assert (listed.status, listed.endedAt) == ("completed", ended_at.isoformat())  # row not written yet
    clock.advance(1.0)
    chaos.expire_due()
    with sessions() as s:
        row = s.get_one(Simulation, sim_id)
        assert (row.status, row.ended_at) == ("completed", ended_at)
    waits = [m for m in messages(caplog, "mm.chaos") if "database" in m or "resumed" in m]
    assert len(waits) == 2 and waits[0].startswith("recording simulation ends waits for the database")


def test_stop_all_with_the_database_down_stops_everything_without_raising(sessions, dead):
    clock = FakeClock()
    faults = FaultLayer(clock)
    chaos = ChaosManager(sessions, Registry(), faults, BatchWriter(sessions, clock), clock, conninfo="")
    chaos.network_latency(5.0, 60_000.0)
    sessions.configure(bind=dead)
    assert chaos.stop_all() == 1  # the engine stopping during an outage still stops the rest
    assert not faults.armed


def fleet_for(sessions: sessionmaker[Session], registry: Registry) -> ManagedFleet:
    def reload() -> None:
        with sessions() as s:
            registry.load(s)

    return ManagedFleet(sessions, reload, lambda _id: None, lambda _id: 0, port_base=free_port_base(20),
                        ready_timeout_s=15.0)


def test_the_autoscaler_skips_periods_while_the_database_is_down_and_says_so_once(sessions, dead, caplog):
    caplog.set_level(logging.INFO, "mm.scaling")
    registry = Registry()
    fleet = fleet_for(sessions, registry)
    try:
        scaling = ScalingManager(sessions, registry, fleet, FakeClock(), lambda _n: 0, lambda _n: None)
        live = sessions.kw["bind"]
        sessions.configure(bind=dead)
        assert scaling.run_period(15.0) == []
        assert scaling.run_period(15.0) == []
        sessions.configure(bind=live)
        assert scaling.run_period(15.0) == []
    finally:
        fleet.stop_all()
    assert len(messages(caplog, "mm.scaling")) == 2
    assert messages(caplog, "mm.scaling")[1] == "the autoscaler resumed after 2 failed attempt(s)"


@pytest.mark.e2e
def test_a_crashed_instance_is_replaced_once_the_database_is_back(sessions, dead, caplog):
    caplog.set_level(logging.INFO, "mm.fleet")
    with sessions.begin() as s:
        row = Service(name="svc", managed=True, launch_command=demo_command("svc", 1), health_path="/health")
        s.add(row)
        s.flush()
        service_id = row.id
    registry = Registry()
    fleet = fleet_for(sessions, registry)
    try:
        (first,) = fleet.start(service_id)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(5)
        live = sessions.kw["bind"]
        sessions.configure(bind=dead)
        assert fleet.supervise() == 0
        assert fleet.supervise() == 0  # still waiting: no exception, no second warning
        sessions.configure(bind=live)
        assert fleet.supervise() == 1
        (second,) = wait_for(lambda: fleet.running("svc"), 5)
        assert second.process.pid != first.process.pid and second.process.poll() is None
        with sessions() as s:
            ids = s.scalars(select(Instance.id).where(Instance.service_id == service_id)).all()
        assert ids == [second.instance_id] and second.instance_id != first.instance_id  # the dead row went
        spec = registry.by_name("svc")
        assert spec is not None and [i.id for i in spec.instances] == [second.instance_id]
    finally:
        fleet.stop_all()
    logged = messages(caplog, "mm.fleet")
    assert sum("waits for the database" in m for m in logged) == 1
    assert sum("exited unexpectedly" in m for m in logged) == 1
    assert any(m.startswith("replacing crashed instances resumed") for m in logged)
