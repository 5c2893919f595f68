"""/api/alert-channels and /api/deliveries on a started engine: CRUD, secrets write-only and masked, validation
naming the field, roles, test sends to real receivers on loopback, metadata addresses refused when saved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from contract.notifications import SECRET_MASK
from contract.roles import Role
from db.alerting_models import AlertChannelRow
from db.models import LogEntry
from engine.api import create_app
from engine.runtime import Runtime
from tests.conftest import token_for, wait_for
from tests.engine.receivers import hook, smtp_server

SECRETS = ("whsec-0123456789", "xoxb-slack-token-999", "smtp-pass-777", "apprise-tok-555")


class Api:
    """Test clients of each role over one started engine, and every answer body they got."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        app = create_app(rt)
        self.clients = {}
        for role in Role:
            c = app.test_client()
            c.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(role, "admin" if role is Role.ADMIN else None)
            self.clients[role] = c
        self.bodies: list[str] = []

    def call(self, method: str, url: str, body: Any = None, role: Role = Role.ADMIN) -> Any:
        """The response (its body kept for the secret check)."""
        r = self.clients[role].open(url, method=method, json=body) if body is not None else \
            self.clients[role].open(url, method=method)
        self.bodies.append(r.get_data(as_text=True))
        return r

    def stored(self, channel_id: int) -> dict[str, Any]:
        """A channel's config as stored."""
        with self.rt.sessions() as session:
            row = session.get(AlertChannelRow, channel_id)
            assert row is not None
            return dict(row.config)


@pytest.fixture
def api(clean_db, settings) -> Iterator[Api]:
    rt = Runtime.open(settings.replace(notify_timeout=2.0, notify_backoff=0.05, notify_max_attempts=3))
    try:
        rt.start()
        yield Api(rt)
    finally:
        rt.stop()


def webhook(url: str = "http://127.0.0.1:9/hook", secret: str | None = SECRETS[0], name: str = "ops") -> dict[str, Any]:
    config: dict[str, Any] = {"url": url}
    if secret is not None:
        config["secret"] = secret
    return {"name": name, "type": "webhook", "config": config}


def test_crud_answers_with_the_channel_and_its_id(api):
    r = api.call("POST", "/api/alert-channels", webhook())
    assert r.status_code == 201
    created = r.json
    assert created["name"] == "ops" and created["type"] == "webhook" and isinstance(created["id"], int)
    assert created["config"] == {"url": "http://127.0.0.1:9/hook", "secret": SECRET_MASK}
    cid = created["id"]
    assert api.call("GET", "/api/alert-channels", role=Role.OPERATOR).json == [created]
    assert api.call("GET", f"/api/alert-channels/{cid}", role=Role.OPERATOR).json == created
    assert api.call("POST", "/api/alert-channels", webhook()).status_code == 409  # the name is taken
    r = api.call("PUT", f"/api/alert-channels/{cid}", webhook("http://127.0.0.1:10/new", None, "ops-2"))
    assert r.status_code == 200 and r.json["name"] == "ops-2" and r.json["config"]["url"] == "http://127.0.0.1:10/new"
    assert api.rt.notifier.channel(cid).name == "ops-2"  # the notifier holds the change at once
    r = api.call("DELETE", f"/api/alert-channels/{cid}")
    assert r.status_code == 200 and r.json == {"message": "alert channel ops-2 deleted", "id": cid}
    assert api.call("GET", f"/api/alert-channels/{cid}", role=Role.OPERATOR).status_code == 404
    assert api.rt.notifier.channel(cid) is None


def test_secrets_are_masked_in_every_answer_and_never_logged(api):
    channels = [
        webhook(),
        {"name": "slack", "type": "slack", "config": {"url": f"https://127.0.0.1/services/T0/B0/{SECRETS[1]}"}},
        {"name": "mail", "type": "email", "config": {"host": "127.0.0.1", "port": 2525, "username": "monitor",
                                                     "password": SECRETS[2], "from": "m@example.test",
                                                     "to": ["a@example.test"]}},
        {"name": "ntfy", "type": "apprise", "config": {"url": f"json://127.0.0.1:8089/{SECRETS[3]}"}},
        {"name": "tgram", "type": "apprise", "config": {"url": f"tgram://123456789:{SECRETS[3]}/12315544/"}},
    ]
    ids = [api.call("POST", "/api/alert-channels", c).json["id"] for c in channels]
    shown = {c["name"]: c["config"] for c in api.call("GET", "/api/alert-channels", role=Role.OPERATOR).json}
    assert shown["slack"]["url"] == f"https://127.0.0.1/{SECRET_MASK}"
    assert shown["mail"]["password"] == SECRET_MASK and shown["mail"]["username"] == "monitor"
    assert shown["ntfy"]["url"] == f"json://127.0.0.1:8089/{SECRET_MASK}"
    assert shown["tgram"]["url"] == f"tgram://{SECRET_MASK}"
    for cid in ids:
        api.call("GET", f"/api/alert-channels/{cid}", role=Role.OPERATOR)
        api.call("PUT", f"/api/alert-channels/{cid}", {**channels[ids.index(cid)], "name": f"renamed-{cid}"})
    api.rt.writer.flush()
    with api.rt.sessions() as session:
        logged = " ".join(f"{m} {json.dumps(meta)}" for m, meta in session.execute(
            select(LogEntry.message, LogEntry.metadata_)))
    assert "alert channel ops added (webhook)" in logged
    for secret in SECRETS:
        assert not any(secret in body for body in api.bodies), secret
        assert secret not in logged, secret


def test_put_keeps_a_secret_left_out_sent_as_the_mask_or_sent_back_as_shown(api):
    cid = api.call("POST", "/api/alert-channels", webhook()).json["id"]
    api.call("PUT", f"/api/alert-channels/{cid}", webhook(secret=None))  # left out
    assert api.stored(cid)["secret"] == SECRETS[0]
    api.call("PUT", f"/api/alert-channels/{cid}", webhook(secret=SECRET_MASK))  # the mask
    assert api.stored(cid)["secret"] == SECRETS[0]
    api.call("PUT", f"/api/alert-channels/{cid}", webhook(secret="a-new-secret"))
    assert api.stored(cid)["secret"] == "a-new-secret"
    api.call("PUT", f"/api/alert-channels/{cid}", {**webhook(), "config": {"url": "http://127.0.0.1:9/hook",
                                                                           "secret": None}})
    assert api.stored(cid)["secret"] is None  # null removes it
    slack = {"name": "slack", "type": "slack", "config": {"url": f"https://127.0.0.1/services/{SECRETS[1]}"}}
    sid = api.call("POST", "/api/alert-channels", slack).json["id"]
    shown = api.call("GET", f"/api/alert-channels/{sid}", role=Role.OPERATOR).json
    assert api.call("PUT", f"/api/alert-channels/{sid}", {**slack, "name": "slack-2", "config": shown["config"]}
                    ).status_code == 200
    assert api.stored(sid)["url"] == f"https://127.0.0.1/services/{SECRETS[1]}"
    r = api.call("PUT", f"/api/alert-channels/{sid}", {**slack, "config": {"url": f"https://x.test/{SECRET_MASK}/x"}})
    assert r.status_code == 422 and r.json["details"][0]["field"] == "config.url"
    assert api.stored(sid)["url"] == f"https://127.0.0.1/services/{SECRETS[1]}"


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "m", "type": "email", "config": {"host": "127.0.0.1", "from": "m@example.test"}}, "config.to"),
    ({"name": "m", "type": "email", "config": {"host": "127.0.0.1", "from": "m@example.test", "to": ["nope"]}},
     "config.to[0]"),
    ({"name": "w", "type": "webhook", "config": {"url": "ftp://127.0.0.1/x"}}, "config.url"),
    ({"name": "w", "type": "webhook", "config": {"url": "http://127.0.0.1/x", "colour": "red"}}, "config.colour"),
    ({"name": "w", "type": "pager", "config": {}}, "type"),
    ({"name": "a", "type": "apprise", "config": {"url": "nosuch://token"}}, "config.url"),
    ({"name": "bad name", "type": "slack", "config": {"url": "http://127.0.0.1/x"}}, "name"),
], ids=["email-no-to", "email-bad-to", "webhook-scheme", "webhook-extra", "unknown-type", "apprise-unknown",
        "bad-name"])
def test_a_wrong_config_is_422_naming_the_field_and_stores_nothing(api, body, field):
    r = api.call("POST", "/api/alert-channels", body)
    assert r.status_code == 422, r.json
    assert field in [d["field"] for d in r.json["details"]]
    assert api.call("GET", "/api/alert-channels", role=Role.OPERATOR).json == []


@pytest.mark.parametrize(("body", "field"), [
    (webhook("http://169.254.169.254/latest/meta-data"), "config.url"),
    ({"name": "s", "type": "slack", "config": {"url": "http://[fe80::1]/services/x"}}, "config.url"),
    ({"name": "m", "type": "email", "config": {"host": "169.254.169.254", "from": "m@example.test",
                                               "to": ["a@example.test"]}}, "config.host"),
    ({"name": "a", "type": "apprise", "config": {"url": "json://169.254.169.254/x"}}, "config.url"),
    ({"name": "g", "type": "webhook", "config": {"url": "http://metadata.google.internal/x"}}, "config.url"),
], ids=["webhook-metadata", "slack-link-local-v6", "email-metadata", "apprise-metadata", "metadata-name"])
def test_a_link_local_or_metadata_host_is_refused_when_saved(api, body, field):
    # only strings: each is refused before any connection is made
    r = api.call("POST", "/api/alert-channels", body)
    assert r.status_code == 422
    [detail] = r.json["details"]
    assert detail["field"] == field and "metadata" in detail["message"]
    assert api.call("GET", "/api/alert-channels", role=Role.OPERATOR).json == []


def test_loopback_and_private_receivers_are_allowed(api):
    for n, url in enumerate(["http://127.0.0.1:9/x", "http://localhost:9/x", "http://10.1.2.3/x"]):
        assert api.call("POST", "/api/alert-channels", webhook(url, name=f"in-{n}")).status_code == 201


def test_roles(api):
    cid = api.call("POST", "/api/alert-channels", webhook()).json["id"]
    assert api.call("GET", "/api/alert-channels", role=Role.VIEWER).status_code == 403
    assert api.call("GET", "/api/alert-channels", role=Role.OPERATOR).status_code == 200
    assert api.call("POST", "/api/alert-channels", webhook(name="x"), role=Role.OPERATOR).status_code == 403
    assert api.call("PUT", f"/api/alert-channels/{cid}", webhook(), role=Role.OPERATOR).status_code == 403
    assert api.call("DELETE", f"/api/alert-channels/{cid}", role=Role.OPERATOR).status_code == 403
    assert api.call("POST", f"/api/alert-channels/{cid}/test", role=Role.OPERATOR).status_code == 403
    assert api.call("GET", "/api/deliveries", role=Role.VIEWER).status_code == 200


def test_a_test_send_answers_with_its_delivery_and_deliveries_lists_it(api):
    with hook() as good, hook((500,)) as bad, smtp_server() as smtp:
        ok_id = api.call("POST", "/api/alert-channels", webhook(good.url(), name="good")).json["id"]
        bad_id = api.call("POST", "/api/alert-channels", webhook(bad.url(), None, "bad")).json["id"]
        mail = {"name": "mail", "type": "email", "config": {"host": "127.0.0.1", "port": smtp.port,
                                                            "starttls": False, "from": "m@example.test",
                                                            "to": ["a@example.test"]}}
        mail_id = api.call("POST", "/api/alert-channels", mail).json["id"]
        delivered = api.call("POST", f"/api/alert-channels/{ok_id}/test")
        failed = api.call("POST", f"/api/alert-channels/{bad_id}/test")
        mailed = api.call("POST", f"/api/alert-channels/{mail_id}/test")
    assert delivered.status_code == 200
    d = delivered.json
    assert (d["status"], d["attempts"], d["event"], d["channelId"], d["lastError"]) == ("delivered", 1, "test",
                                                                                        ok_id, None)
    assert d["deliveredAt"] is not None and d["payload"]["alerts"][0]["labels"]["alertname"] == "test-notification"
    [request] = good.received
    assert json.loads(request.body) == d["payload"] and request.headers["X-Signature"].startswith("sha256=")
    f = failed.json
    assert (f["status"], f["attempts"], f["lastError"]) == ("failed", 1, "HTTP 500: receiver says no")
    assert bad.count() == 1  # a test is one attempt, never retried
    assert mailed.json["status"] == "delivered"
    assert smtp.mails[0].message["Subject"] == "[FIRING] monitor: test-notification (info)"
    assert api.call("POST", "/api/alert-channels/999/test").status_code == 404

    listed = wait_for(lambda: [x for x in api.call("GET", "/api/deliveries").json if x["status"] != "pending"], 5)
    assert len(listed) == 3
    assert [x["id"] for x in listed] == [mailed.json["id"], f["id"], d["id"]]  # newest first
    by_channel = api.call("GET", f"/api/deliveries?channel={bad_id}", role=Role.VIEWER).json
    assert [x["id"] for x in by_channel] == [f["id"]]
    assert [x["id"] for x in api.call("GET", "/api/deliveries?status=failed").json] == [f["id"]]
    assert [x["id"] for x in api.call("GET", "/api/deliveries?limit=1").json] == [mailed.json["id"]]
    assert api.call("GET", "/api/deliveries?status=lost").status_code == 400
    for body in api.bodies:
        assert SECRETS[0] not in body


def test_a_test_send_needs_the_engine_loop(clean_db, settings):
    rt = Runtime.open(settings)  # opened, not started: no loop to send on
    try:
        c = create_app(rt).test_client()
        c.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.ADMIN, "admin")
        created = c.post("/api/alert-channels", json=webhook())
        assert created.status_code == 201
        assert c.post(f"/api/alert-channels/{created.get_json()['id']}/test").status_code == 503
    finally:
        rt.stop()
