"""GET /metrics (Prometheus text format 0.0.4; a bearer token when METRICS_TOKEN is set) and the per-request API
instrumentation behind it."""

from __future__ import annotations

import hmac
import time
from typing import Any

from flask import Flask, Response, g, request

from contract.errors import Unauthorized
from engine.api.auth import bearer
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.telemetry.exporter import CONTENT_TYPE, UNMATCHED_ROUTE, Telemetry

__all__ = ["METRICS_PATH", "api", "document_exposition", "install_request_metrics"]

METRICS_PATH = "/metrics"

api = ApiBlueprint("prometheus", tag="monitoring")


@api.route("GET", METRICS_PATH, role=None, ok=(200, None), errors=(401,),
           summary="Prometheus text exposition (format 0.0.4) of the engine and what it observes; with METRICS_TOKEN "
                   "set, only for `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise), else public")
def metrics() -> Response:
    """A scrape of the engine's registry. Not a user's token: Prometheus sends one fixed scrape credential."""
    rt = runtime()
    expected = rt.settings.metrics_token
    if expected is not None:
        given = bearer() or ""
        # compared in constant time: the answer's timing says nothing about how much of a guess was right
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise Unauthorized("/metrics needs the scrape token: Authorization: Bearer <METRICS_TOKEN>")
    return Response(rt.telemetry.render(), status=200, headers={"Content-Type": CONTENT_TYPE})


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
