"""Request bodies built from the dashboard's forms: only what the user set or changed, in the API's field names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "BREAKER_FIELDS",
    "autoscaler_body",
    "breaker_body",
    "create_body",
    "load_test_body",
    "network_latency_body",
    "parse_urls",
    "service_failure_body",
    "update_body",
]


# the thresholds the breaker form edits: API field names, in the order the form shows them
BREAKER_FIELDS = ("failureThreshold", "failureRateThreshold", "windowSize", "minimumCalls", "slowCallMs", "timeout",
                  "halfOpenCalls")


def breaker_body(current: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The PUT /api/circuit-breakers/<name> body: only the thresholds in `new` that differ from `current`.

    Both hold API field names; a slowCallMs of None turns slow-call counting off.
    """
    return {f: new[f] for f in BREAKER_FIELDS if f in new and new[f] != current.get(f)}


def autoscaler_body(
    enabled: bool,
    *,
    metric: str,
    target: float,
    tolerance_pct: float,
    up_window_s: float,
    down_window_s: float,
    max_step: int,
    min_instances: int,
    max_instances: int,
) -> dict[str, Any]:
    """The PUT /api/services/<id>/autoscaler body; the tolerance, given in %, is sent as 0..1.

    Turning the autoscaler off sends only the instance bounds: the engine keeps no settings of one that is off.
    """
    body: dict[str, Any] = {"enabled": enabled, "minInstances": min_instances, "maxInstances": max_instances}
    if enabled:
        body.update({"metric": metric, "target": target, "tolerance": tolerance_pct / 100.0,
                     "scaleUpWindowS": up_window_s, "scaleDownWindowS": down_window_s, "maxStep": max_step})
    return body


def load_test_body(
    users: int, rate: float, duration_s: float, service: str | None, path: str, method: str
) -> dict[str, Any]:
    """The POST /api/load-test/start body from the form; no service lets the API pick the only one."""
    body: dict[str, Any] = {"concurrentUsers": users, "requestsPerSecond": rate, "duration": duration_s,
                            "path": path.strip() or "/", "method": method}
    if service:
        body["targetService"] = service
    return body


def service_failure_body(
    service: str, duration_ms: float, percent: float, status_code: int | None, mode: str
) -> dict[str, Any]:
    """The POST /api/simulate/service-failure body; `percent` of requests (1..100) is sent as a 0..1 probability.

    No status code means a connection error; a kill takes neither (it terminates one process, every request).
    """
    body: dict[str, Any] = {"serviceName": service, "duration": duration_ms, "mode": mode}
    if mode != "kill":
        body["probability"] = percent / 100.0
        if status_code is not None:
            body["statusCode"] = status_code
    return body


def network_latency_body(
    latency_ms: float, duration_ms: float, service: str | None, jitter_ms: float, percent: float
) -> dict[str, Any]:
    """The POST /api/simulate/network-latency body; no service delays every service, no jitter is left out."""
    body: dict[str, Any] = {"latency": latency_ms, "duration": duration_ms, "probability": percent / 100.0}
    if service:
        body["serviceName"] = service
    if jitter_ms:
        body["jitter"] = jitter_ms
    return body


def parse_urls(text: str) -> list[str]:
    """Instance URLs typed one per line: stripped, blanks dropped, order kept, duplicates removed."""
    return list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))


def create_body(name: str, urls_text: str, health_path: str, metrics_path: str, weight: int) -> dict[str, Any]:
    """The POST /api/services body from the register form; a blank metrics path is omitted."""
    body: dict[str, Any] = {
        "name": name.strip(),
        "instances": parse_urls(urls_text),
        "healthPath": health_path.strip(),
        "weight": weight,
    }
    if metrics_path.strip():
        body["metricsPath"] = metrics_path.strip()
    return body


def update_body(
    current: Mapping[str, Any],
    *,
    name: str,
    health_path: str,
    metrics_path: str,
    weight: int,
    urls_text: str | None,
) -> dict[str, Any]:
    """The PUT body from the edit form: only fields that differ from `current` (a blank metrics path clears it).

    `current` holds name, healthPath, metricsPath, weight and instances (a list of URLs); `urls_text` None
    means the instances were not editable (a managed service).
    """
    body: dict[str, Any] = {}
    if name.strip() != current["name"]:
        body["name"] = name.strip()
    if health_path.strip() != current["healthPath"]:
        body["healthPath"] = health_path.strip()
    new_metrics = metrics_path.strip() or None
    if new_metrics != current["metricsPath"]:
        body["metricsPath"] = new_metrics
    if weight != current["weight"]:
        body["weight"] = weight
    if urls_text is not None:
        urls = parse_urls(urls_text)
        if set(urls) != set(current["instances"]):
            body["instances"] = urls
    return body
