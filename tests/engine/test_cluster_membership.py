"""Several engines on one real PostgreSQL: membership, liveness, one leader with a fencing term, takeover after a
lost connection and after a `kill -9`, and a start that leaves a live engine's work alone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, make_url, select, text
from sqlalchemy.orm import Session, sessionmaker

from contract.errors import ConfigError
from contract.settings import Settings
from db import cluster
from db.models import LoadTest, Simulation
from db.session import conninfo, make_engine, make_session_factory, sqlalchemy_url
from engine.api import create_app
from engine.clock import SystemClock
from engine.cluster import EngineIdentity, Leadership, Membership, sweep_gone_engines
from engine.cluster.membership import CONNECT_TIMEOUT_S
from engine.runtime import Runtime
from tests.conftest import TEST_JWT_SECRET, drop_database, free_port, wait_for

LEASE_S = 2.0
HEARTBEAT_S = 0.5
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dsn(clean_db: Engine, database_url: str) -> str:
    """The clean test database as a libpq connection string."""
    return conninfo(database_url)


@contextmanager
def members(dsn: str, count: int) -> Iterator[list[Membership]]:
    """`count` started memberships on one database, started in order (the first leads); stopped at the end."""
    started: list[Membership] = []
    try:
        for i in range(count):
            m = Membership(dsn, EngineIdentity(uuid.uuid4(), f"engine-{i}", "test-host", 1000 + i,
                                               f"http://127.0.0.1:{9000 + i}"),
                           Leadership(LEASE_S, time.monotonic), heartbeat_s=HEARTBEAT_S)
            m.start()
            started.append(m)
        yield started
    finally:
        for m in started:
            m.stop()


def view(sessions: sessionmaker[Session]) -> cluster.ClusterView:
    with sessions() as session:
        return cluster.cluster_view(session, LEASE_S)


def engine_row(sessions: sessionmaker[Session], member: Membership) -> cluster.EngineRecord:
    return next(e for e in view(sessions).engines if e.id == member.identity.id)


def timed(predicate: Callable[[], object], timeout: float) -> float:
    """Seconds until predicate holds (fails the test past timeout)."""
    began = time.monotonic()
    assert wait_for(predicate, timeout, step=0.02), f"not within {timeout} s"
    return time.monotonic() - began


def test_two_members_see_each_other_live(dsn: str, sessions: sessionmaker[Session]):
    with members(dsn, 2) as (a, b):
        v = view(sessions)
        assert {e.id for e in v.engines if e.live} == {a.identity.id, b.identity.id}
        row = engine_row(sessions, b)
        assert (row.name, row.host, row.pid, row.api_url, row.stopped_at) == (
            "engine-1", "test-host", 1001, "http://127.0.0.1:9001", None)
        assert 0 <= row.heartbeat_age_s < LEASE_S
        beats = a.beats
        time.sleep(3 * HEARTBEAT_S)
        assert a.beats >= beats + 2  # it keeps beating on its own thread
        assert engine_row(sessions, a).heartbeat_at > row.started_at


def test_a_clean_stop_sets_stopped_at_and_is_not_live(dsn: str, sessions: sessionmaker[Session]):
    with members(dsn, 2) as (a, b):
        b.stop()
        row = engine_row(sessions, b)
        assert row.stopped_at is not None and not row.live
        assert engine_row(sessions, a).live


def test_one_whose_heartbeat_stops_is_gone_after_the_lease(dsn: str, sessions: sessionmaker[Session]):
    with members(dsn, 2) as (a, b):
        b.abandon()  # the thread and connection gone, no stop recorded: a crash
        assert engine_row(sessions, b).live  # its last heartbeat is younger than the lease yet
        gone_in = timed(lambda: not engine_row(sessions, b).live, LEASE_S + 1)
        row = engine_row(sessions, b)
        assert row.stopped_at is None and row.heartbeat_age_s >= LEASE_S
        assert gone_in <= LEASE_S + 0.1
        assert engine_row(sessions, a).live


def test_exactly_one_of_two_leads_and_the_row_names_it_with_its_term(dsn: str, sessions: sessionmaker[Session]):
    with members(dsn, 2) as (a, b):
        time.sleep(2 * HEARTBEAT_S)
        assert (a.leadership.is_leader, b.leadership.is_leader) == (True, False)
        assert a.leadership.term is not None and b.leadership.term is None
        v = view(sessions)
        assert (v.leader_id, v.term) == (a.identity.id, a.leadership.term)
        assert [e.leader for e in v.engines if e.id == a.identity.id] == [True]


def test_a_clean_stop_hands_the_lead_over_at_the_next_heartbeat(dsn: str, sessions: sessionmaker[Session]):
    with members(dsn, 2) as (a, b):
        term = a.leadership.term
        assert term is not None
        a.stop()
        assert not a.leadership.is_leader
        took = timed(lambda: b.leadership.is_leader, HEARTBEAT_S + 0.5)
        assert b.leadership.term == term + 1
        assert took <= HEARTBEAT_S + 0.2  # no wait for the old leader's time: it gave the lead up


def leader_backend_pid(engine: Engine) -> int:
    """The server process of the one connection holding the leader's lock in this database."""
    with engine.connect() as c:
        pids = c.execute(text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = 727020 AND granted "
                              "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"))
        found = [p for (p,) in pids]
    assert len(found) == 1, f"the leader's lock is held by {found}"
    return int(found[0])


def test_killing_the_leaders_connection_moves_the_lead_with_the_next_term(dsn: str, clean_db: Engine,
                                                                          sessions: sessionmaker[Session]):
    with members(dsn, 2) as (a, b):
        assert a.leadership.is_leader
        term = a.leadership.term
        assert term is not None
        pid = leader_backend_pid(clean_db)
        with clean_db.connect() as c:
            assert c.scalar(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        killed = time.monotonic()
        assert wait_for(lambda: not a.leadership.is_leader, LEASE_S / 2 + HEARTBEAT_S, step=0.01)
        a_stopped = time.monotonic() - killed
        assert wait_for(lambda: b.leadership.is_leader, LEASE_S + HEARTBEAT_S, step=0.01)
        b_started = time.monotonic() - killed
        assert b.leadership.term == term + 1
        assert a_stopped <= LEASE_S / 2 + HEARTBEAT_S
        assert b_started <= LEASE_S + HEARTBEAT_S
        assert a_stopped < b_started  # the old leader stopped acting before the new one began
        assert not a.leadership.is_leader  # reconnected, it does not take the lead back
        assert engine_row(sessions, a).live  # and it is still a member: its heartbeat reconnected
        v = view(sessions)
        assert (v.leader_id, v.term) == (b.identity.id, term + 1)
        print(f"\nleader's connection killed: old leader stopped after {a_stopped:.2f} s, "
              f"new leader (term {term + 1}) acting after {b_started:.2f} s (lease {LEASE_S:g} s)")


def test_a_leader_whose_heartbeat_fails_stops_within_half_a_lease():
    clock = [100.0]
    lead = Leadership(LEASE_S, lambda: clock[0])
    lead.elected(7, sent=100.0, wait_s=0.0)
    assert (lead.is_leader, lead.term) == (True, 7)
    clock[0] = 100.0 + LEASE_S / 2 - 0.001
    assert lead.is_leader
    clock[0] = 100.0 + LEASE_S / 2
    assert (lead.is_leader, lead.term, lead.held_term) == (False, None, 7)
    lead.confirmed(sent=clock[0])
    assert lead.is_leader
    lead.lost(connection=True)
    assert not lead.is_leader and not lead.may_contend()
    clock[0] += LEASE_S
    assert lead.may_contend()


def test_a_lone_leader_that_loses_the_database_leads_through_the_outage_with_others_it_does_not():
    clock = [10.0]
    lone = Leadership(LEASE_S, lambda: clock[0])
    lone.elected(1, sent=10.0, wait_s=0.0, alone=True)
    lone.lost(connection=True)
    clock[0] += 60  # a minute of outage: not the leader, yet its alerts go on from memory
    assert (lone.is_leader, lone.leads_through_outage, lone.may_contend()) == (False, True, True)
    lone.reached()
    assert not lone.leads_through_outage
    shared = Leadership(LEASE_S, lambda: clock[0])
    shared.elected(1, sent=clock[0], wait_s=0.0, alone=True)
    shared.confirmed(sent=clock[0], alone=False)  # another engine became live
    shared.lost(connection=True)
    assert (shared.is_leader, shared.leads_through_outage, shared.may_contend()) == (False, False, False)


def test_a_lone_leader_whose_connection_is_cut_takes_the_lead_back_at_once(dsn: str, clean_db: Engine):
    with members(dsn, 1) as (a,):
        term = a.leadership.term
        assert term is not None
        with clean_db.connect() as c:
            assert c.scalar(text("SELECT pg_terminate_backend(:p)"), {"p": leader_backend_pid(clean_db)})
        seen: list[bool] = []

        def back() -> bool:
            seen.append(a.leadership.leads_through_outage)
            return a.leadership.term == term + 1

        assert wait_for(back, 2 * HEARTBEAT_S, step=0.01)
        assert all(seen)  # no moment without a leader: no one else to wait for
        assert a.leadership.is_leader


def test_a_new_leader_waits_out_the_previous_leaders_time():
    clock = [50.0]
    lead = Leadership(LEASE_S, lambda: clock[0])
    lead.elected(3, sent=50.0, wait_s=0.6)  # the previous leader confirmed lease/2 - 0.6 s before our answer
    assert not lead.is_leader and lead.held_term == 3
    clock[0] = 50.6
    assert lead.is_leader and lead.term == 3


def test_a_database_that_never_answers_bounds_start_and_stop(caplog: pytest.LogCaptureFixture):
    with socket.socket() as server:  # accepts connections and never says a word
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        m = Membership(f"postgresql://postgres@127.0.0.1:{server.getsockname()[1]}/nothing",
                       EngineIdentity(uuid.uuid4(), "hung", "h", 1, None), Leadership(LEASE_S, time.monotonic),
                       heartbeat_s=HEARTBEAT_S)
        began = time.monotonic()
        m.start()
        started = time.monotonic() - began
        assert not m.leadership.is_leader and m.beats == 0
        began = time.monotonic()
        m.stop()
        stopped = time.monotonic() - began
    assert started < CONNECT_TIMEOUT_S + 1 and stopped < CONNECT_TIMEOUT_S + LEASE_S / 2 + 1.5
    failed = [r.getMessage() for r in caplog.records if "cluster heartbeat failed" in r.getMessage()]
    assert len(failed) == 1  # once per outage, however many beats failed


@pytest.mark.parametrize(("env", "error"), [
    ({"CLUSTER_LEASE_S": "2"}, "CLUSTER_LEASE_S: must be more than twice CLUSTER_HEARTBEAT_S (1)"),
    ({"CLUSTER_LEASE_S": "1", "CLUSTER_HEARTBEAT_S": "0.5"}, "CLUSTER_LEASE_S: must be more than twice "
                                                             "CLUSTER_HEARTBEAT_S (0.5)"),
    ({"CLUSTER_HEARTBEAT_S": "0"}, "CLUSTER_HEARTBEAT_S: Input should be greater than or equal to 0.1"),
], ids=["lease-at-twice-the-default-heartbeat", "lease-at-twice-a-set-heartbeat", "no-heartbeat"])
def test_a_lease_must_outlast_two_heartbeats(env: dict[str, str], error: str):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == error
    assert Settings.from_env({"CLUSTER_LEASE_S": "2.5"}).cluster_lease_s == 2.5


# -- work of live and gone engines, with two runtimes on one database ---------------------------------------------


def add_work(sessions: sessionmaker[Session], engine_id: uuid.UUID | None) -> tuple[int, int]:
    now = SystemClock().now()
    with sessions.begin() as s:
        test = LoadTest(status="running", concurrent_users=1, requests_per_second=1.0, duration_s=60.0,
                        started_at=now, engine_id=engine_id)
        sim = Simulation(kind="network-latency", target=None, params={"latency": 1}, status="active",
                         started_at=now, ends_at=now + timedelta(minutes=1), engine_id=engine_id)
        s.add_all([test, sim])
        s.flush()
        return test.id, sim.id


def statuses(sessions: sessionmaker[Session], ids: tuple[int, int]) -> tuple[str, str]:
    with sessions() as s:
        return (s.scalars(select(LoadTest.status).where(LoadTest.id == ids[0])).one(),
                s.scalars(select(Simulation.status).where(Simulation.id == ids[1])).one())


def test_a_start_marks_interrupted_only_the_work_of_engines_that_are_not_live(
        sessions: sessionmaker[Session], settings: Settings):
    fast = settings.replace(cluster_lease_s=LEASE_S, cluster_heartbeat_s=HEARTBEAT_S)
    a = Runtime.open(fast)
    a.start()
    try:
        live = add_work(sessions, a.engine_id)
        gone = add_work(sessions, uuid.uuid4())  # an engine with no row: gone
        unowned = add_work(sessions, None)
        b = Runtime.open(fast.replace(api_port=free_port()))
        try:
            assert statuses(sessions, live) == ("running", "active")
            assert statuses(sessions, gone) == ("interrupted", "interrupted")
            assert statuses(sessions, unowned) == ("interrupted", "interrupted")
            b.start()
            assert a.leadership.is_leader and not b.leadership.is_leader
            a.membership.abandon()  # a crash as the others see it: no heartbeat, no stop recorded
            assert wait_for(lambda: b.leadership.is_leader, LEASE_S + 2 * HEARTBEAT_S)
            assert sweep_gone_engines(b.sessions, b.clock, LEASE_S) == (0, 0)  # a is within its lease yet
            assert wait_for(lambda: statuses(sessions, live) == ("interrupted", "interrupted"),
                            2 * LEASE_S + 1)  # b's cluster-upkeep job, once a's lease has run out
        finally:
            b.stop()
    finally:
        a.stop()


# -- a real `kill -9` of an engine process -------------------------------------------------------------------------


@pytest.fixture
def throwaway_url(database_url: str) -> Iterator[str]:
    """A database of its own on the test server, dropped at the end."""
    name = f"mm_cluster_{uuid.uuid4().hex[:10]}"
    admin = make_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=None)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(sqlalchemy_url(database_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(admin, name)
        admin.dispose()


def test_kill_9_of_the_leading_engine_process_the_other_shows_it_gone_and_leads(
        throwaway_url: str, settings: Settings, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("ADMIN_PASSWORD",)}
    env.update(DATABASE_URL=throwaway_url, DATA_DIR=str(tmp_path / "a"), API_PORT=str(free_port()), PROXY_PORT="0",
               JWT_SECRET=TEST_JWT_SECRET, ADMIN_PASSWORD="admin-password-for-tests",
               CLUSTER_LEASE_S=str(LEASE_S), CLUSTER_HEARTBEAT_S=str(HEARTBEAT_S), HEALTH_INTERVAL="1")
    proc = subprocess.Popen([sys.executable, "-m", "engine", "serve"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    b: Runtime | None = None
    try:
        sessions = make_session_factory(make_engine(throwaway_url, poolclass=None))
        assert wait_for(lambda: _leader_pid(sessions) == proc.pid, 60), "the engine process never led"
        b = Runtime.open(settings.replace(database_url=throwaway_url, data_dir=tmp_path / "b",
                                          cluster_lease_s=LEASE_S, cluster_heartbeat_s=HEARTBEAT_S))
        b.start(app=create_app(b))
        api = httpx.Client(base_url=b.settings.api_base_url, trust_env=False, timeout=5)
        token = api.post("/api/auth/token", json={"username": "admin", "password": "admin-password-for-tests"})
        api.headers["Authorization"] = "Bearer " + token.json()["token"]
        before = api.get("/api/cluster").json()
        assert before["engineId"] == str(b.engine_id) and before["leaseSeconds"] == LEASE_S
        a_id = next(e["id"] for e in before["engines"] if e["pid"] == proc.pid)
        assert before["leaderId"] == a_id and sum(e["live"] for e in before["engines"]) == 2

        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(5)

        def taken_over() -> bool:
            now = api.get("/api/cluster").json()
            a_row = next(e for e in now["engines"] if e["id"] == a_id)
            return (not a_row["live"] and a_row["stoppedAt"] is None and now["leaderId"] == str(b.engine_id)
                    and now["term"] == before["term"] + 1)

        assert wait_for(taken_over, LEASE_S + 2, step=0.05), api.get("/api/cluster").json()
        took = time.monotonic() - killed
        assert wait_for(lambda: b.leadership.is_leader, LEASE_S)
        print(f"\nkill -9 of the leading engine: the other shows it gone and itself leader after {took:.2f} s "
              f"(lease {LEASE_S:g} s)")
        api.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if b is not None:
            b.stop()


def _leader_pid(sessions: sessionmaker[Session]) -> int | None:
    try:
        with sessions() as session:
            v = cluster.cluster_view(session, LEASE_S)
    except Exception:  # the engine process is still migrating the new database
        return None
    return next((e.pid for e in v.engines if e.leader), None)
