"""GET /api/services at fleet scale: filters, order, pages and the total, on a real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from db.models import Service

# name -> status; registered in this order (ids ascending)
FLEET = {"orders": "healthy", "payments": "unhealthy", "Order-History": "degraded", "inventory": "unknown",
         "shipping": "healthy", "billing": "unhealthy", "order_audit": "healthy"}


@pytest.fixture
def fleet(client, runtime):
    for n, name in enumerate(FLEET):
        urls = [f"http://127.0.0.{n + 1}:{9000 + k}" for k in range(n % 3 + 1)]
        assert client.post("/api/services", json={"name": name, "instances": urls}).status_code == 201
    with runtime.sessions.begin() as s:
        for name, status in FLEET.items():
            s.execute(update(Service).where(Service.name == name).values(status=status))
    return client


def names(response) -> list[str]:
    assert response.status_code == 200, response.json
    return [s["name"] for s in response.json]


def test_without_parameters_every_service_with_the_total(fleet):
    r = fleet.get("/api/services")
    assert names(r) == list(FLEET)
    assert r.headers["X-Total-Count"] == "7"
    first = r.json[0]
    assert first["instanceCount"] == 1 and first["url"] == "http://127.0.0.1:9000" and first["load"] == 0
    assert [i["url"] for i in r.json[2]["instances"]] == [f"http://127.0.0.3:{9000 + k}" for k in range(3)]


def test_pages_cover_the_fleet_once_and_say_the_total(fleet):
    seen: list[str] = []
    for offset in (0, 3, 6):
        r = fleet.get(f"/api/services?limit=3&offset={offset}")
        assert r.headers["X-Total-Count"] == "7"
        seen += names(r)
    assert seen == list(FLEET)
    assert names(fleet.get("/api/services?limit=3&offset=7")) == []


@pytest.mark.parametrize(
    ("query", "expected", "total"),
    [
        ("status=healthy", ["orders", "shipping", "order_audit"], 3),
        ("status=unhealthy,degraded", ["payments", "Order-History", "billing"], 3),
        ("status=healthy&limit=2&offset=1", ["shipping", "order_audit"], 3),
        ("name=ORDER", ["orders", "Order-History", "order_audit"], 3),
        ("name=r_a", ["order_audit"], 1),  # _ is a character, not a wildcard
        ("name=order&status=healthy", ["orders", "order_audit"], 2),
        ("sort=name", ["billing", "inventory", "Order-History", "order_audit", "orders", "payments", "shipping"], 7),
        ("sort=name&name=order", ["Order-History", "order_audit", "orders"], 3),
        ("sort=status", ["billing", "payments", "Order-History", "inventory", "order_audit", "orders", "shipping"], 7),
        ("sort=status&limit=2", ["billing", "payments"], 7),
        ("name=nothing-like-it", [], 0),
    ],
    ids=["status", "status-list", "status-page", "name-any-case", "name-literal-underscore", "name-and-status",
         "sort-name", "sort-name-case-blind-bytes", "sort-worst-first", "sort-page", "no-match"],
)
def test_filters_order_and_pages(fleet, query, expected, total):
    r = fleet.get(f"/api/services?{query}")
    assert names(r) == expected
    assert r.headers["X-Total-Count"] == str(total)


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"), ("offset=-1", "offset"),
     ("status=sick", "status"), ("status=", "status"), ("sort=size", "sort"), ("name=", "name"),
     ("status=healthy&status=degraded", "status"), ("page=2", "page")],
    ids=["limit-zero", "limit-over", "limit-text", "offset-negative", "status-unknown-word", "status-empty",
         "sort-unknown", "name-empty", "repeated", "unknown-parameter"],
)
def test_a_wrong_parameter_is_400_naming_it(fleet, query, field):
    r = fleet.get(f"/api/services?{query}")
    assert r.status_code == 400
    assert [d["field"] for d in r.json["details"]] == [field]


def test_registering_updates_the_registry_without_a_reload(client, runtime):
    for name in ("b-svc", "a-svc"):
        assert client.post("/api/services", json={"name": name, "url": "http://127.0.0.1:7001"}).status_code == 201
    specs = runtime.registry.services()
    assert [s.name for s in specs] == ["b-svc", "a-svc"]  # id order
    assert runtime.registry.by_name("a-svc").instances[0].url == "http://127.0.0.1:7001"
    sid = specs[0].id
    assert client.delete(f"/api/services/{sid}").status_code == 200
    assert [s.name for s in runtime.registry.services()] == ["a-svc"]
