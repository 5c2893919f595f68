"""Alerting end to end: a real engine, an external service that is Python's own http.server run as an OS process,
a webhook receiver and an SMTP server (aiosmtpd) on loopback (tests.engine.receivers). Stopping the service pages
once, starting it again resolves once; a silence or a simulation started with silence: true pages nobody; the
incident remembers it all."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from contract.roles import Role
from contract.settings import Settings
from engine.api import create_app
from engine.runtime import Runtime
from tests.conftest import free_port, token_for, wait_for
from tests.engine.receivers import Hook, hook, smtp_server

pytestmark = pytest.mark.e2e

FOR_S = 10
SECRET = "hmac-secret-of-the-test"


@contextmanager
def http_server(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m http.server` on a loopback port: a server this project did not write."""
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: _answers(port), 10), "http.server did not start"
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def engine(clean_db: Any, settings: Settings) -> Iterator[tuple[Runtime, httpx.Client]]:
    """A started engine checking every half second, with an admin's API client."""
    rt = Runtime.open(settings.replace(alert_interval=0.25, notify_backoff=0.5))
    rt.start(app=create_app(rt))
    api = httpx.Client(base_url=settings.api_base_url, trust_env=False, timeout=10,
                       headers={"Authorization": "Bearer " + token_for(Role.ADMIN)})
    try:
        yield rt, api
    finally:
        api.close()
        rt.stop()


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


def _events(receiver: Hook) -> list[str]:
    return [json.loads(r.body)["status"] for r in list(receiver.received)]


def test_a_stopped_service_pages_once_and_resolves_once_by_webhook_and_email(
        engine: tuple[Runtime, httpx.Client], settings: Settings) -> None:
    _, api = engine
    port = free_port()
    with hook() as receiver, smtp_server() as smtp, http_server(port) as server:
        service = _created(api.post("/api/services", json={"name": "static", "url": f"http://127.0.0.1:{port}",
                                                             "healthPath": "/"}))
        webhook = _created(api.post("/api/alert-channels", json={
            "name": "hook", "type": "webhook", "config": {"url": receiver.url(), "secret": SECRET}}))
        email = _created(api.post("/api/alert-channels", json={
            "name": "mail", "type": "email", "config": {
                "host": "127.0.0.1", "port": smtp.port, "starttls": False, "from": "monitor@example.test",
                "to": ["oncall@example.test"]}}))
        _created(api.post("/api/alert-rules", json={
            "name": "static-down", "kind": "service-down", "service": "static", "forSeconds": FOR_S,
            "severity": "critical", "channels": [webhook["id"], email["id"]]}))
        assert wait_for(lambda: api.get(f"/api/services/{service['id']}").json()["status"] == "healthy", 10)

        server.terminate()
        server.wait(10)
        stopped = time.monotonic()
        budget = FOR_S + 2 * settings.health_interval
        assert wait_for(lambda: _events(receiver) == ["firing"], budget + 2), _events(receiver)
        fired_after = receiver.received[0].at - stopped
        assert fired_after <= budget + 0.5, f"firing arrived {fired_after:.2f} s after the stop"
        assert fired_after >= FOR_S, "fired before the condition held for forSeconds"
        time.sleep(2)
        assert _events(receiver) == ["firing"], "paged more than once for one firing"

        first = receiver.received[0]
        expected = "sha256=" + hmac.new(SECRET.encode(), first.body, hashlib.sha256).hexdigest()
        assert first.headers.get("X-Signature") == expected
        payload = json.loads(first.body)
        assert payload["alerts"][0]["labels"]["service"] == "static"
        assert payload["alerts"][0]["status"] == "firing"

        assert wait_for(lambda: len(smtp.mails) == 1, 5)
        subject = smtp.mails[0].message["Subject"]
        assert "static" in subject and "FIRING" in subject.upper(), subject

        with http_server(port):
            assert wait_for(lambda: _events(receiver) == ["firing", "resolved"], 10), _events(receiver)
            time.sleep(1.5)
            assert _events(receiver) == ["firing", "resolved"]
            assert json.loads(receiver.received[1].body)["alerts"][0]["status"] == "resolved"
            assert wait_for(lambda: len(smtp.mails) == 2, 5)
            assert "RESOLVED" in smtp.mails[1].message["Subject"].upper()

    incidents = api.get("/api/incidents").json()
    assert [(i["service"], i["status"], i["expected"]) for i in incidents] == [("static", "resolved", False)]
    detail = api.get(f"/api/incidents/{incidents[0]['id']}").json()
    kinds = [e["kind"] for e in detail["timeline"]]
    assert "alert" in kinds and "health" in kinds, kinds
    deliveries = api.get("/api/deliveries").json()
    assert sorted((d["channelName"], d["event"], d["status"]) for d in deliveries) == [
        ("hook", "firing", "delivered"), ("hook", "resolved", "delivered"),
        ("mail", "firing", "delivered"), ("mail", "resolved", "delivered")]


def test_a_silence_and_a_silencing_simulation_page_nobody(engine: tuple[Runtime, httpx.Client]) -> None:
    rt, api = engine
    port = free_port()
    with hook() as receiver, http_server(port) as server:
        _created(api.post("/api/services", json={"name": "quiet", "url": f"http://127.0.0.1:{port}",
                                                   "healthPath": "/"}))
        channel = _created(api.post("/api/alert-channels", json={
            "name": "hook", "type": "webhook", "config": {"url": receiver.url()}}))
        _created(api.post("/api/alert-rules", json={
            "name": "quiet-down", "kind": "service-down", "service": "quiet", "forSeconds": 0,
            "severity": "critical", "channels": [channel["id"]]}))
        assert wait_for(lambda: api.get("/api/services").json()[0]["status"] == "healthy", 10)

        # an expected failure: the simulation silences its target for its duration
        sim = api.post("/api/simulate/service-failure", json={"serviceName": "quiet", "duration": 4000,
                                                             "silence": True})
        assert sim.status_code in (200, 201), sim.text
        assert wait_for(lambda: [a["silenced"] for a in api.get("/api/alerts?state=firing").json()] == [True], 10)
        assert wait_for(lambda: api.get("/api/alerts?state=resolved").json() != [], 15)
        incidents = api.get("/api/incidents").json()
        assert [(i["service"], i["expected"]) for i in incidents] == [("quiet", True)]
        detail = api.get(f"/api/incidents/{incidents[0]['id']}").json()
        assert "simulation" in [e["kind"] for e in detail["timeline"]]

        # a silence made by hand
        now = rt.clock.now()
        _created(api.post("/api/silences", json={
            "service": "quiet", "startsAt": now.isoformat(), "endsAt": (now.replace(year=now.year + 1)).isoformat(),
            "comment": "maintenance"}))
        server.terminate()
        server.wait(10)
        assert wait_for(lambda: [(a["state"], a["silenced"]) for a in api.get("/api/alerts?state=firing").json()]
                        == [("firing", True)], 10)
        time.sleep(1)
    assert receiver.received == [], "a silenced alert was notified"
