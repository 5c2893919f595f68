"""End to end: the demo fleet as real processes on loopback, checked by the real engine over real HTTP."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
from sqlalchemy import select

from contract.roles import Role
from db.models import LogEntry, MetricRow
from engine.api import create_app
from engine.fleet.demo import DEMO_SERVICES, start_demo_instance
from engine.fleet.processes import wait_ready
from engine.runtime import Runtime
from tests.conftest import token_for, wait_for

pytestmark = pytest.mark.e2e


def statuses(api):
    return {i["url"]: i["status"] for s in api.get("/api/services").json() for i in s["instances"]}


@pytest.fixture
def engine_with_demo(clean_db, settings):
    rt = Runtime.open(settings.replace(health_interval=0.5, collect_interval=1.0))
    rt.start(demo=True, app=create_app(rt))
    api = httpx.Client(base_url=settings.api_base_url, trust_env=False, timeout=5,
                       headers={"Authorization": "Bearer " + token_for(Role.VIEWER)})
    try:
        yield rt, api
    finally:
        api.close()
        rt.stop()


def test_kill_and_restart_an_instance(engine_with_demo):
    rt, api = engine_with_demo
    interval = rt.settings.health_interval
    services = api.get("/api/services").json()
    assert sorted(s["name"] for s in services) == ["inventory", "orders", "payments"]
    assert sum(s["instanceCount"] for s in services) == 6 and all(s["managed"] for s in services)
    assert wait_for(lambda: set(statuses(api).values()) == {"healthy"}, timeout=10), statuses(api)

    victim = rt.fleet.instances[0]
    others = [i.url for i in rt.fleet.instances[1:]]
    killed_at = time.monotonic()
    victim.on_purpose = True  # as a chaos kill: the supervisor does not replace it (see the next test)
    os.kill(victim.process.pid, signal.SIGKILL)
    assert wait_for(lambda: statuses(api)[victim.url] == "unhealthy", timeout=3 * interval + 1.0)
    took = time.monotonic() - killed_at
    assert took <= 3 * interval + 1.0  # within 3 check intervals (+ the writer's flush)
    assert all(statuses(api)[u] == "healthy" for u in others)
    service = next(s for s in api.get("/api/services").json() if s["name"] == victim.service)
    assert service["status"] == "degraded"  # one of two instances down
    logs = api.get("/api/logs", params={"level": "ERROR", "source": "health"}).json()
    assert any(victim.url in r["message"] and "unhealthy" in r["message"] for r in logs)
    assert any(r["metadata"]["to"] == "unhealthy" and r["metadata"]["instance"] == victim.url for r in logs)

    restarted = start_demo_instance(victim.service, victim.port, seed=1)
    try:
        wait_ready([restarted])
        assert wait_for(lambda: statuses(api)[victim.url] == "healthy", timeout=4 * interval + 1.0)
        assert wait_for(
            lambda: next(s for s in api.get("/api/services").json() if s["name"] == victim.service)["status"]
            == "healthy", timeout=2.0)
    finally:
        restarted.process.terminate()
        restarted.process.wait(5)


def test_an_instance_that_dies_unexpectedly_is_replaced(engine_with_demo):
    rt, api = engine_with_demo
    assert wait_for(lambda: set(statuses(api).values()) == {"healthy"}, timeout=10), statuses(api)
    victim = next(i for i in rt.fleet.instances if i.service == "inventory")
    os.kill(victim.process.pid, signal.SIGKILL)

    def replaced():
        urls = statuses(api)
        inventory = [i for i in rt.fleet.running("inventory")]
        return victim.url not in urls and len(inventory) == 2 and all(urls.get(i.url) == "healthy" for i in inventory)

    assert wait_for(replaced, timeout=10)
    assert next(s for s in api.get("/api/services").json() if s["name"] == "inventory")["instanceCount"] == 2
    logs = api.get("/api/logs", params={"level": "WARN", "source": "fleet"}).json()
    assert any(victim.url in r["message"] and "replacing" in r["message"] for r in logs)


def test_collection_scrapes_real_cpu_and_memory(engine_with_demo):
    rt, _ = engine_with_demo

    def rows():
        with rt.sessions() as s:
            return list(s.scalars(select(MetricRow).where(MetricRow.cpu_percent.is_not(None))))

    found = wait_for(rows, timeout=6)
    assert {r.service_name for r in found} >= {"orders"}
    for r in found:
        assert r.instances_scraped == 2
        assert 5 < r.memory_mb < 1000  # two real python processes' resident memory
        assert 0 <= r.cpu_percent < 200
        assert r.request_count == 0 and r.latency_avg_ms is None  # nothing routed yet


def test_stop_leaves_no_demo_process(clean_db, settings):
    rt = Runtime.open(settings)
    rt.start(demo=True, app=create_app(rt))
    assert {i.service for i in rt.fleet.instances} == set(DEMO_SERVICES)  # the demo fleet, launched
    pids = [i.process.pid for i in rt.fleet.instances]
    assert len(pids) == 6
    began = time.monotonic()
    rt.stop()
    assert time.monotonic() - began < 10
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with rt.sessions() as s:  # the stop itself was logged before the writer closed
        assert s.scalar(select(LogEntry.message).order_by(LogEntry.id.desc()).limit(1)) == "engine stopped"
