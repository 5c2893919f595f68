"""GET /metrics (Prometheus text format 0.0.4, no auth) and the per-request API instrumentation behind it."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, g, request

from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.telemetry.exporter import CONTENT_TYPE, UNMATCHED_ROUTE, Telemetry

__all__ = ["METRICS_PATH", "api", "document_exposition", "install_request_metrics"]

METRICS_PATH = "/metrics"

api = ApiBlueprint("prometheus", tag="monitoring")


@api.route("GET", METRICS_PATH, role=None, ok=(200, None),
           summary="Prometheus text exposition (format 0.0.4) of the engine and what it observes (no auth)")
def metrics() -> Response:
    """A scrape of the engine's registry; public like /api/health, since Prometheus scrapes without tokens."""
    return Response(runtime().telemetry.render(), status=200, headers={"Content-Type": CONTENT_TYPE})


def document_exposition(document: dict[str, Any]) -> None:
    """Declare /metrics' 200 answer as text/plain in an OpenAPI document (declared routes default to JSON)."""
    ok = document["paths"][METRICS_PATH]["get"]["responses"]["200"]
    ok["description"] = "Prometheus text exposition format 0.0.4"
    ok["content"] = {"text/plain": {"schema": {"type": "string"}}}


def install_request_metrics(app: Flask, telemetry: Telemetry) -> None:
    """Time every request and count it by method, route template and status (install before anything that
    may refuse a request, so refusals such as 429 are counted too)."""

    @app.before_request
    def _start_timer() -> None:
        g.mm_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started: float | None = g.get("mm_started")
        if started is not None:
            rule = request.url_rule
            route = rule.rule if rule is not None else UNMATCHED_ROUTE  # a template: bounded label values
            telemetry.observe_api(request.method, route, response.status_code, time.perf_counter() - started)
        return response
