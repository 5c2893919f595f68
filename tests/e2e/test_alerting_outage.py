"""The monitor's own database stopped: a `monitor-database` alert is evaluated from the engine's live state and
delivered while PostgreSQL is down, resolved once it is back, and every alerting row of the outage (the alert, its
state changes, its deliveries, its incident) reaches the database afterwards.

It stops its own embedded PostgreSQL (bench.outage_rig), whatever DATABASE_URL says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from bench.outage_rig import OutagePostgres
from db.session import make_engine
from engine.api import create_app
from engine.runtime import Runtime
from tests.conftest import settings_for, wait_for
from tests.engine.receivers import Hook, hook

pytestmark = pytest.mark.e2e


@pytest.fixture
def postgres(pg_dir: Path) -> Iterator[OutagePostgres]:
    """An embedded PostgreSQL this test may stop and start."""
    pg = OutagePostgres(pg_dir)
    pg.start()
    try:
        yield pg
    finally:
        pg.close()


def _statuses(receiver: Hook) -> list[str]:
    return [json.loads(r.body)["status"] for r in list(receiver.received)]


def test_the_monitor_database_alert_is_delivered_during_the_outage_and_nothing_is_lost(
        postgres: OutagePostgres, tmp_path: Path) -> None:
    settings = settings_for(postgres.url, tmp_path).replace(alert_interval=0.25)
    rt = Runtime.open(settings)
    rt.start(app=create_app(rt))
    api = httpx.Client(base_url=settings.api_base_url, trust_env=False, timeout=10)
    # logged in on this engine's own database (token_for's users live in the shared test database)
    assert settings.admin_password is not None
    login = api.post("/api/auth/token", json={"username": "admin",
                                              "password": settings.admin_password.get_secret_value()})
    api.headers["Authorization"] = "Bearer " + login.json()["token"]
    try:
        with hook() as receiver:
            channel = api.post("/api/alert-channels", json={"name": "pager", "type": "webhook",
                                                            "config": {"url": receiver.url()}})
            assert channel.status_code == 201, channel.text
            rule = api.post("/api/alert-rules", json={"name": "monitor-db", "kind": "monitor-database",
                                                      "forSeconds": 0, "severity": "critical",
                                                      "channels": [channel.json()["id"]]})
            assert rule.status_code == 201, rule.text

            postgres.pause()
            assert wait_for(lambda: len(receiver.received) >= 1, 20), "no notification while the database was down"
            fired = json.loads(receiver.received[0].body)
            assert fired["status"] == "firing"
            assert fired["alerts"][0]["labels"]["kind"] == "monitor-database"
            # the API answers the alerts from memory while the database is away
            alerts = api.get("/api/alerts").json()
            assert [(a["kind"], a["state"]) for a in alerts] == [("monitor-database", "firing")]

            postgres.resume()
            assert wait_for(lambda: _statuses(receiver) == ["firing", "resolved"], 30), receiver.received
            assert wait_for(lambda: rt.writer.status().pending == 0 and rt.writer.status().database_ok, 30)
            rt.writer.flush()
        assert rt.writer.status().dropped == 0
    finally:
        api.close()
        rt.stop()

    db = make_engine(postgres.url)
    try:
        with db.connect() as c:
            states = c.execute(text("SELECT state FROM alert_events WHERE rule_id = 1 ORDER BY at, id")).scalars()
            assert [s for s in states if s != "pending"] == ["firing", "resolved"]
            assert c.execute(text("SELECT state FROM alerts WHERE rule_id = 1")).scalar_one() == "resolved"
            deliveries = c.execute(text("SELECT event, status, attempts FROM deliveries ORDER BY created_at")).all()
            assert [tuple(d) for d in deliveries] == [("firing", "delivered", 1), ("resolved", "delivered", 1)]
            incident = c.execute(text("SELECT service_name, status FROM incidents")).all()
            assert [tuple(i) for i in incident] == [(None, "resolved")]
    finally:
        db.dispose()
