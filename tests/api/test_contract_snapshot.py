"""The API's contract, pinned: the OpenAPI document's shapes and a scripted set of answers match recorded files.

Texts (summaries, descriptions, titles) and component names may change; paths, methods, parameters, statuses and
every schema's fields and types may not. Answers are compared field for field after volatile values (times,
sizes, durations) are replaced by their type. Set SNAPSHOT_UPDATE=1 to rewrite the files after a deliberate change.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

SNAPSHOTS = Path(__file__).parent / "snapshots"
TEXT_KEYS = {"title", "description", "summary"}
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
PARTITION = re.compile(r"^metrics_p\d{8}$")  # a day's partition: its date is today's
# values measured at run time: their type is pinned, not their value
VOLATILE = {
    "sizeBytes", "totalSizeBytes", "rowEstimate", "uptimeSeconds", "remainingMs", "elapsedSeconds", "token",
    "latencyMs", "lagSeconds", "pid", "bufferedRows", "writtenRows", "lastFlushMs", "memoryMb", "rssMb",
    "expiresAt", "version", "pendingRows", "dropped", "flushes", "connections",
}


def _resolve(node: Any, components: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """node with every $ref inlined (a recursive ref becomes its name) and texts dropped."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name in seen:
                return {"$recursive": True}
            return _resolve(components[name], components, (*seen, name))
        return {k: _resolve(v, components, seen) for k, v in node.items() if k not in TEXT_KEYS}
    if isinstance(node, list):
        return [_resolve(v, components, seen) for v in node]
    return node


def document_shape(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document's paths with schemas inlined and texts dropped: what a client depends on."""
    components = document.get("components", {}).get("schemas", {})
    paths = _resolve(document["paths"], components)
    for operations in paths.values():
        for operation in operations.values():
            if isinstance(operation, dict):
                operation.pop("operationId", None)
                operation.pop("tags", None)
    return {"openapi": document["openapi"], "paths": paths, "security": document.get("components", {}).get(
        "securitySchemes")}


def normalise(value: Any, key: str = "") -> Any:
    """value with run-time figures replaced by their type."""
    if isinstance(value, dict):
        return {k: normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, key) for v in value]
    if key in VOLATILE and value is not None:
        return f"<{type(value).__name__}>"
    if isinstance(value, str) and ISO_TIME.match(value):
        return "<time>"
    if isinstance(value, str) and PARTITION.match(value):
        return "metrics_p<day>"
    if isinstance(value, float):
        return "<float>"
    return value


FREE_FORM = {"additionalProperties": True, "type": "object"}


def typed_where_free(expected: Any, actual: Any) -> Any:
    """expected, with each free-form object (dict[str, Any]) replaced by what actual has there when that is a typed
    object: a free-form object may gain a declared shape; nothing else may change."""
    if expected == FREE_FORM and isinstance(actual, dict) and actual.get("type") == "object":
        return actual
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: typed_where_free(v, actual.get(k)) for k, v in expected.items()}
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [typed_where_free(e, a) for e, a in zip(expected, actual, strict=True)]
    return expected


def _compare(name: str, actual: Any, *, free_form_may_gain_shape: bool = False) -> None:
    path = SNAPSHOTS / f"{name}.json"
    if os.environ.get("SNAPSHOT_UPDATE") == "1" or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
    expected = json.loads(path.read_text())
    if free_form_may_gain_shape:
        expected = typed_where_free(expected, actual)
    assert actual == expected, f"{name} differs from {path}; SNAPSHOT_UPDATE=1 rewrites it after a deliberate change"


def test_openapi_document_matches_the_snapshot(admin) -> None:
    document = admin.get("/api/openapi.json").json
    _compare("openapi", document_shape(document), free_form_may_gain_shape=True)


def _script(client, admin, anon) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """A fixed sequence of requests over every resource that answers without background jobs."""
    calls: list[tuple[Any, str, str, Any]] = [
        (anon, "GET", "/api/services", None),
        (anon, "POST", "/api/auth/token", {"username": "admin", "password": "wrong"}),
        (anon, "POST", "/api/auth/token", {"username": "admin"}),
        (client, "GET", "/api/services", None),
        (client, "POST", "/api/services", {"name": "orders", "url": "http://127.0.0.1:7001/"}),
        (client, "POST", "/api/services", {"name": "payments", "instances": ["http://127.0.0.1:7002",
                                                                             "http://localhost:7003"],
                                            "healthPath": "/healthz", "metricsPath": "/metrics", "weight": 3}),
        (client, "POST", "/api/services", {"name": "orders", "url": "http://127.0.0.1:7004"}),
        (client, "POST", "/api/services", {"name": "bad name", "url": "ftp://x"}),
        (client, "POST", "/api/services", {"name": "remote", "url": "http://10.0.0.5:80"}),
        (client, "GET", "/api/services", None),
        (client, "GET", "/api/services/1", None),
        (client, "GET", "/api/services/999", None),
        (client, "PUT", "/api/services/2", {"weight": 5, "healthPath": "/health"}),
        (client, "PUT", "/api/services/2", {"weight": 0}),
        (client, "GET", "/api/load-balancer", None),
        (client, "PUT", "/api/load-balancer", {"algorithm": "least-load"}),
        (client, "PUT", "/api/load-balancer", {"algorithm": "nope"}),
        (client, "GET", "/api/circuit-breakers", None),
        (client, "PUT", "/api/circuit-breakers/orders", {"failureThreshold": 7, "timeout": 30}),
        (client, "PUT", "/api/circuit-breakers/orders", {"failureThreshold": -1}),
        (client, "PUT", "/api/circuit-breakers/nosuch", {"failureThreshold": 3}),
        (client, "POST", "/api/circuit-breakers/orders/reset", None),
        (client, "POST", "/api/circuit-breakers/reset-all", None),
        (client, "GET", "/api/circuit-breakers", None),
        (client, "GET", "/api/load-test/status", None),
        (client, "GET", "/api/load-tests", None),
        (client, "GET", "/api/load-tests/5", None),
        (client, "POST", "/api/load-test/start", {"concurrentUsers": 0, "requestsPerSecond": 10, "duration": 1}),
        (client, "POST", "/api/load-test/start", {"concurrentUsers": 1, "requestsPerSecond": 10, "duration": 1,
                                                   "targetService": "nosuch"}),
        (client, "POST", "/api/load-test/stop", None),
        (client, "GET", "/api/simulations", None),
        (client, "POST", "/api/simulate/service-failure", {"serviceName": "nosuch", "duration": 1000}),
        (client, "POST", "/api/simulate/network-latency", {"latency": -5, "duration": 1000}),
        (client, "POST", "/api/simulate/database-overload", {"duration": 1000, "intensity": "extreme"}),
        (client, "POST", "/api/simulate/memory-leak", {"duration": 1000, "rate": 0}),
        (client, "POST", "/api/simulate/stop-all", None),
        (client, "POST", "/api/simulations/77/stop", None),
        (client, "GET", "/api/scaling", None),
        (client, "GET", "/api/scaling/events", None),
        (client, "POST", "/api/services/1/scale-up", None),
        (client, "POST", "/api/services/1/scale-down", None),
        (client, "PUT", "/api/services/1/autoscaler", {"enabled": True, "minInstances": 1, "maxInstances": 3}),
        (client, "GET", "/api/overview", None),
        (client, "GET", "/api/shards", None),
        (client, "GET", "/api/logs?limit=2&level=nope", None),
        (client, "GET", "/api/users", None),
        (admin, "GET", "/api/users", None),
        (admin, "POST", "/api/users", {"username": "viewer1", "password": "a-long-password-1", "role": "viewer"}),
        (admin, "POST", "/api/users", {"username": "viewer1", "password": "short", "role": "king"}),
        (admin, "GET", "/api/users", None),
        (admin, "DELETE", "/api/users/999", None),
        (client, "DELETE", "/api/services/2", None),
        (client, "DELETE", "/api/services/2", None),
        (client, "GET", "/api/services", None),
        (client, "GET", "/proxy/nosuch/x", None),
        (client, "GET", "/api/incidents", None),
        (client, "GET", "/api/incidents?status=nope", None),
        (client, "GET", "/api/incidents/stats?windowDays=7", None),
        (client, "GET", "/api/incidents/00000000-0000-0000-0000-000000000000", None),
        (client, "POST", "/api/incidents/not-an-id/acknowledge", {"note": "x"}),
        (client, "GET", "/api/services/1/slo", None),
        (client, "PUT", "/api/services/1/slo", {"availabilityTarget": 99.5, "latencyThresholdMs": 250,
                                                "latencyTarget": 95}),
        (client, "PUT", "/api/services/1/slo", {"availabilityTarget": 100}),
        (client, "GET", "/api/services/1/slo", None),
        (client, "POST", "/api/alert-rules", {"name": "orders-down", "kind": "service-down", "service": "orders",
                                              "forSeconds": 30, "severity": "critical"}),
        (client, "POST", "/api/alert-rules", {"name": "slow", "kind": "latency-p95", "windowSeconds": 7200}),
        (client, "POST", "/api/alert-rules", {"name": "orders-down", "kind": "breaker-open"}),
        (client, "GET", "/api/alert-rules", None),
        (client, "GET", "/api/alert-rules/1", None),
        (client, "PUT", "/api/alert-rules/1", {"name": "orders-errors", "kind": "error-rate", "threshold": 5,
                                               "windowSeconds": 60, "repeatSeconds": 600}),
        (client, "GET", "/api/alert-rules/99", None),
        (client, "GET", "/api/alerts", None),
        (client, "GET", "/api/alerts?state=firing&silenced=true", None),
        (client, "POST", "/api/silences", {"service": "orders", "startsAt": "2030-01-01T00:00:00Z",
                                           "endsAt": "2030-01-02T00:00:00Z", "comment": "maintenance"}),
        (client, "POST", "/api/silences", {"startsAt": "2030-01-01T00:00:00Z", "endsAt": "2030-01-02T00:00:00Z",
                                           "comment": "nothing named"}),
        (client, "GET", "/api/silences", None),
        (client, "DELETE", "/api/silences/1", None),
        (client, "GET", "/api/silences?state=expired", None),
        (client, "DELETE", "/api/alert-rules/1", None),
    ]
    answers = []
    for who, method, url, sent in calls:
        r = who.open(url, method=method, json=sent) if sent is not None else who.open(url, method=method)
        answer = r.get_json(silent=True)
        if url == "/api/shards" and r.status_code == 200:
            # past days' partitions are whatever earlier tests left (truncation keeps partitions): today on only
            answer["shards"] = [s for s in answer["shards"] if s["status"] in {"active", "future", "default"}]
        answers.append({"request": f"{method} {url}", "status": r.status_code, "body": normalise(answer)})
    return answers


def test_recorded_answers_match_the_snapshot(client, admin, anon) -> None:
    _compare("answers", _script(client, admin, anon))


@pytest.mark.parametrize("path", ["/api/health", "/api/metrics"], ids=["health", "metrics"])
def test_composite_answers_keep_their_fields(client, path: str) -> None:
    def keys(value: Any, prefix: str = "") -> list[str]:
        if isinstance(value, dict):
            return sorted(k for key, v in value.items() for k in [f"{prefix}{key}", *keys(v, f"{prefix}{key}.")])
        return []

    _compare("keys_" + path.rsplit("/", 1)[-1], keys(client.get(path).get_json()))
