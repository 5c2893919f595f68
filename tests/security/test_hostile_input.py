"""Hostile input the API refuses with a 4xx before it reaches anything that could fail on it: bodies nested too
deeply for the JSON parser or for us, and ids no PostgreSQL integer can hold."""

from __future__ import annotations

import re

import pytest

from contract.requests import MAX_ID
from engine.api import declared_routes
from engine.api.validation import MAX_DEPTH


def test_a_40_kb_nested_body_is_a_400_naming_the_body_without_a_login(anon):
    deep = "[" * 20_000 + "]" * 20_000  # past the JSON parser's own recursion limit
    response = anon.post("/api/auth/token", data=deep, content_type="application/json")
    assert response.status_code == 400
    assert [d["field"] for d in response.json["details"]] == ["body"]


@pytest.mark.parametrize("levels", [MAX_DEPTH, MAX_DEPTH + 1], ids=["at-the-bound", "past-it"])
def test_an_object_nested_past_the_bound_is_refused_and_one_at_it_is_judged_on_its_fields(anon, levels):
    body = '{"username": "admin", "password": "x", "extra": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"
    response = anon.post("/api/auth/token", data=body, content_type="application/json")
    if levels > MAX_DEPTH:
        assert response.status_code == 400
        assert response.json["details"] == [{"field": "body", "message": f"nested deeper than {MAX_DEPTH} levels"}]
    else:
        assert response.status_code == 422  # parsed and validated: `extra` is not a field
        assert [d["field"] for d in response.json["details"]] == ["extra"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/load-tests/{id}"),
    ("POST", "/api/services/{id}/scale-up"),
    ("POST", "/api/services/{id}/scale-down"),
    ("POST", "/api/simulations/{id}/stop"),
    ("GET", "/api/services/{id}"),
    ("DELETE", "/api/users/{id}"),
    ("GET", "/api/alert-rules/{id}"),
    ("POST", "/api/alert-channels/{id}/test"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("/") else None)
def test_an_id_past_a_postgresql_integer_is_404_and_never_reaches_the_database(admin, method, path):
    for id_ in (MAX_ID + 1, 10**30):
        response = admin.open(path.format(id=id_), method=method, json={})
        assert response.status_code == 404, (path, id_, response.status_code)
        assert "out of range" not in response.get_data(as_text=True)
    assert admin.open(path.format(id=MAX_ID), method=method, json={}).status_code == 404  # could exist: looked up


ID_ROUTES = [r for r in declared_routes() if "<int:" in r.rule]


@pytest.mark.parametrize("route", ID_ROUTES, ids=lambda r: f"{r.method} {r.rule}")
def test_an_id_past_a_postgresql_integer_is_404_for_every_method_of_a_path(admin, route):
    # a path with several methods (GET, PUT, DELETE /api/services/<id>) must not answer 405 for the methods whose
    # rule is not the first one tried
    path = re.sub(r"<int:\w+>", str(MAX_ID + 1), route.rule)
    response = admin.open(path, method=route.method, json={})
    assert response.status_code == 404, (route.method, path, response.status_code, response.headers.get("Allow"))
    assert response.json["error"]


def test_public_health_names_the_kind_of_a_database_failure_not_its_hosts_or_users(anon, runtime):
    failure = Exception('connection to server at "db.internal" (10.1.2.3), user "monitor" failed')
    runtime.writer.stop()  # no later batch may succeed meanwhile and clear the failure
    runtime.writer._requeue([], failure)  # as a failed batch leaves it
    writer = anon.get("/api/health").json["writer"]
    assert writer["databaseOk"] is False and writer["lastError"] == "Exception"
