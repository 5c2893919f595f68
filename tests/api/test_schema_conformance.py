"""Requests the OpenAPI document calls invalid are refused with a 4xx naming the field, and change nothing: JSON
types are taken as the document states them, ids in bodies are bounded like ids in paths."""

from __future__ import annotations

import pytest

from contract.requests import MAX_ID

RULE = {"name": "slow", "kind": "slo-burn", "forSeconds": 0}


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/alert-rules", {**RULE, "forSeconds": False}, "forSeconds"),
    ("/api/alert-rules", {**RULE, "forSeconds": "5"}, "forSeconds"),
    ("/api/simulate/network-latency", {"latency": 100, "duration": 1000, "silence": 0}, "silence"),
    ("/api/simulate/database-overload", {"duration": True, "intensity": "low"}, "duration"),
], ids=["boolean-for-integer", "string-for-integer", "integer-for-boolean", "boolean-for-number"])
def test_a_value_of_another_json_type_is_422_naming_it(client, path, body, field):
    response = client.post(path, json=body)
    assert response.status_code == 422, response.json
    assert [d["field"] for d in response.json["details"]] == [field]
    assert client.get("/api/alert-rules").json == []
    assert client.get("/api/simulations").json == []


def test_a_rule_naming_a_channel_id_past_a_postgresql_integer_is_422_naming_it(client):
    response = client.post("/api/alert-rules", json={**RULE, "channels": [MAX_ID + 1]})
    assert response.status_code == 422, response.json  # not the database's "integer out of range"
    assert [d["field"] for d in response.json["details"]] == ["channels[0]"]
    assert client.get("/api/alert-rules").json == []


@pytest.mark.parametrize("since", ["0.5", "1700000000"])
def test_logs_since_a_number_is_400_naming_since(client, since):
    response = client.get("/api/logs", query_string={"since": since})
    assert response.status_code == 400, response.json
    assert [d["field"] for d in response.json["details"]] == ["since"]


def test_logs_since_an_iso_date_time_is_read(client):
    assert client.get("/api/logs", query_string={"since": "2026-01-31T12:00:00Z"}).status_code == 200


def test_the_documented_algorithms_are_the_ones_the_balancer_takes(client):
    document = client.get("/api/openapi.json").json
    names = document["components"]["schemas"]["AlgorithmChange"]["properties"]["algorithm"]["enum"]
    for name in names:
        assert client.put("/api/load-balancer", json={"algorithm": name}).status_code == 200, name
    assert client.put("/api/load-balancer", json={"algorithm": "fastest"}).status_code == 400


def test_an_integer_written_with_a_zero_fraction_is_an_integer(client):
    # JSON Schema's integer is a number without a fraction: 60.0 is one, 60.5 is not
    assert client.post("/api/alert-rules", json={**RULE, "forSeconds": 60.0}).json["forSeconds"] == 60
    response = client.post("/api/alert-rules", json={**RULE, "name": "other", "forSeconds": 60.5})
    assert response.status_code == 422
    assert [d["field"] for d in response.json["details"]] == ["forSeconds"]
