"""The registry API with Flask's test client on a real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db.models import Instance, LogEntry, Service


def count(sessions, model):
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


@pytest.fixture
def db(runtime):
    return runtime.sessions


def test_create_with_url_alone_is_one_instance(client, runtime):
    r = client.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:7001/"})
    assert r.status_code == 201
    body = r.json
    assert body["name"] == "orders" and body["url"] == "http://127.0.0.1:7001"
    assert body["instanceCount"] == 1 and body["status"] == "unknown" and body["lastHealthCheck"] is None
    assert body["healthPath"] == "/health" and body["metricsPath"] is None and body["load"] == 0
    assert [i["url"] for i in body["instances"]] == ["http://127.0.0.1:7001"]
    assert runtime.registry.by_name("orders").instances[0].url == "http://127.0.0.1:7001"


def test_create_with_instances_and_get(client):
    r = client.post("/api/services", json={
        "name": "payments", "instances": ["http://127.0.0.1:7002", "http://localhost:7003"],
        "healthPath": "/healthz", "metricsPath": "/metrics", "weight": 3,
    })
    assert r.status_code == 201, r.json
    sid = r.json["id"]
    got = client.get(f"/api/services/{sid}").json
    assert got["instanceCount"] == 2 and got["weight"] == 3 and got["metricsPath"] == "/metrics"
    assert [s["name"] for s in client.get("/api/services").json] == ["payments"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": ""}, 422, "name"),
        ({"name": "has space", "url": "http://127.0.0.1:1"}, 422, "name"),
        ({"name": "a"}, 422, "url"),
        ({"name": "a", "url": "ftp://127.0.0.1"}, 422, "url"),
        ({"name": "a", "url": "http://127.0.0.1:99999"}, 422, "url"),
        ({"name": "a", "instances": ["http://127.0.0.1:1", "nope"]}, 422, "instances[1]"),
        ({"name": "a", "url": "http://10.0.0.5:80"}, 422, "url"),
        ({"name": "a", "url": "http://127.0.0.1:1", "weight": 0}, 422, "weight"),
        ({"name": "a", "url": "http://127.0.0.1:1", "healthPath": "health"}, 422, "healthPath"),
        ({"name": "a", "url": "http://127.0.0.1:1", "status": "healthy"}, 422, "status"),
        ({"url": "http://127.0.0.1:1"}, 422, "name"),
    ],
    ids=["empty-name", "bad-name", "no-instance", "scheme", "port", "second-instance", "remote", "weight",
         "health-path", "measured-field", "missing-name"],
)
def test_bad_create_names_the_field_and_writes_nothing(client, db, body, status, field):
    r = client.post("/api/services", json=body)
    assert r.status_code == status
    assert r.json["error"]
    assert field in [d["field"] for d in r.json["details"]]
    assert count(db, Service) == 0 and count(db, Instance) == 0


def test_body_that_is_not_json_is_400(client, db):
    r = client.post("/api/services", data="name=x", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 400 and r.json["details"][0]["field"] == "body"
    assert count(db, Service) == 0


def test_duplicate_name_is_409_and_keeps_the_first(client, db):
    assert client.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:7001"}).status_code == 201
    r = client.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:7009"})
    assert r.status_code == 409 and "orders" in r.json["error"]
    with db() as s:
        assert [i.url for i in s.scalars(select(Instance))] == ["http://127.0.0.1:7001"]


def test_unknown_id_is_404(client):
    for method in (client.get, client.delete):
        r = method("/api/services/999")
        assert r.status_code == 404 and r.json["error"] == "service 999 not found"
    assert client.put("/api/services/999", json={"weight": 2}).status_code == 404


def test_update_keeps_unchanged_instances(client, db, runtime):
    sid = client.post("/api/services", json={
        "name": "orders", "instances": ["http://127.0.0.1:7001", "http://127.0.0.1:7002"]}).json["id"]
    first_id = client.get(f"/api/services/{sid}").json["instances"][0]["id"]
    r = client.put(f"/api/services/{sid}", json={
        "instances": ["http://127.0.0.1:7001", "http://127.0.0.1:7003"], "weight": 5, "metricsPath": "/metrics"})
    assert r.status_code == 200, r.json
    assert [i["url"] for i in r.json["instances"]] == ["http://127.0.0.1:7001", "http://127.0.0.1:7003"]
    assert r.json["instances"][0]["id"] == first_id
    assert (r.json["weight"], r.json["metricsPath"]) == (5, "/metrics")
    assert [i.url for i in runtime.registry.by_name("orders").instances] == [
        "http://127.0.0.1:7001", "http://127.0.0.1:7003"]


def test_bad_update_changes_nothing(client, db):
    sid = client.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:7001"}).json["id"]
    client.post("/api/services", json={"name": "payments", "url": "http://127.0.0.1:7002"})
    assert client.put(f"/api/services/{sid}", json={"name": "payments"}).status_code == 409
    r = client.put(f"/api/services/{sid}", json={"weight": 2, "instances": []})
    assert r.status_code == 422 and r.json["details"][0]["field"] == "instances"
    r = client.put(f"/api/services/{sid}", json={"load": 5})
    assert r.status_code == 422 and r.json["details"][0]["field"] == "load"
    got = client.get(f"/api/services/{sid}").json
    assert (got["name"], got["weight"], got["instanceCount"]) == ("orders", 1, 1)


def test_managed_instances_cannot_be_replaced(client, db):
    with db.begin() as s:
        s.add(Service(name="orders", managed=True, instances=[Instance(url="http://127.0.0.1:7001")]))
    with db() as s:
        sid = s.scalar(select(Service.id))
    r = client.put(f"/api/services/{sid}", json={"instances": ["http://127.0.0.1:7005"]})
    assert r.status_code == 409
    assert client.get(f"/api/services/{sid}").json["instances"][0]["url"] == "http://127.0.0.1:7001"


def test_delete_removes_service_and_instances_and_logs_it(client, db, runtime):
    sid = client.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:7001"}).json["id"]
    r = client.delete(f"/api/services/{sid}")
    assert r.status_code == 200 and r.json["id"] == sid
    assert count(db, Service) == 0 and count(db, Instance) == 0
    assert runtime.registry.services() == ()
    runtime.writer.flush()
    with db() as s:
        query = select(LogEntry.message).where(LogEntry.source == "registry").order_by(LogEntry.id)
        messages = list(s.scalars(query))
    assert messages == ["service orders registered with 1 instance(s)", "service orders deleted"]


def test_allowlisted_networks_are_accepted(db, settings):
    from contract.roles import Role
    from engine.api import create_app
    from engine.runtime import Runtime
    from tests.conftest import token_for

    rt = Runtime.open(settings.replace(instance_allowlist=("127.0.0.0/8", "10.1.0.0/16")))
    try:
        c = create_app(rt).test_client()
        c.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.OPERATOR)
        r = c.post("/api/services", json={"name": "ext", "instances": ["http://10.1.2.3:80", "http://10.2.0.1"]})
        assert r.status_code == 422 and r.json is not None
        assert r.json["details"] == [{"field": "instances[1]", "message": "10.2.0.1 is not in INSTANCE_ALLOWLIST"}]
        r = c.post("/api/services", json={"name": "ext", "url": "http://10.1.2.3:80"})
        assert r.status_code == 201  # registered only: nothing is sent to it in this test
    finally:
        rt.stop()


def test_instance_weights_are_set_kept_and_changed(client, runtime):
    r = client.post("/api/services", json={"name": "orders", "instances": [
        {"url": "http://127.0.0.1:7001", "weight": 3}, "http://127.0.0.1:7002"]})
    assert r.status_code == 201
    assert [(i["url"], i["weight"]) for i in r.json["instances"]] == [
        ("http://127.0.0.1:7001", 3), ("http://127.0.0.1:7002", 1)]
    sid = r.json["id"]
    r = client.put(f"/api/services/{sid}", json={"instances": [
        "http://127.0.0.1:7001", {"url": "http://127.0.0.1:7002", "weight": 5}]})
    assert [(i["url"], i["weight"]) for i in r.json["instances"]] == [
        ("http://127.0.0.1:7001", 3), ("http://127.0.0.1:7002", 5)]  # a bare URL keeps its weight
    assert [i.weight for i in runtime.registry.by_name("orders").instances] == [3, 5]
    bad = client.post("/api/services", json={"name": "x", "instances": [{"url": "http://127.0.0.1:1", "weight": 0}]})
    assert bad.status_code == 422 and bad.json["details"][0]["field"].startswith("instances[0]")
