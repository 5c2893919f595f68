"""The REST API: create_app(runtime) builds a Flask app over a running engine.

One module per resource, each an ApiBlueprint whose routes declare role, schemas and statuses (routing.py); views
reach the engine through context.runtime(). The API sits above the runtime: it imports the runtime and the
capabilities, and nothing below imports it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter, Map, ValidationError

from contract.requests import MAX_ID
from engine import VERSION
from engine.api import (
    alerts,
    audit,
    channels,
    chaos,
    cluster,
    docs,
    experiments,
    history,
    incidents,
    loadtests,
    logs,
    prometheus,
    proxy,
    scaling,
    services,
    slos,
    status,
    status_page,
    storage,
    traffic,
    users,
)
from engine.api.audit import install_audit_trail
from engine.api.auth import install_rate_limit
from engine.api.errors import register_error_handlers
from engine.api.openapi import build_document
from engine.api.prometheus import document_exposition, install_request_metrics
from engine.api.routing import ApiBlueprint, Route
from engine.runtime import Runtime

__all__ = ["create_app", "declared_routes"]

PARTS: tuple[ApiBlueprint, ...] = (
    status.api, users.api, services.api, scaling.api, traffic.api, loadtests.api, chaos.api, logs.api, storage.api,
    history.api, alerts.api, incidents.api, slos.api, channels.api, proxy.api, docs.api, prometheus.api,
    status_page.api, audit.api, experiments.api, cluster.api,
)


def declared_routes() -> list[Route]:
    """Every route of the API, as declared (role, schemas, statuses)."""
    return [route for part in PARTS for route in part.routes]


class IdConverter(IntegerConverter):
    """A path id: a PostgreSQL integer, at most 2^31 - 1; a larger number is 404 for every method of the path, so it
    never reaches the database."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None, max: int | None = None,
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, MAX_ID if max is None else max, signed)

    def to_python(self, value: str) -> Any:
        """The id; 404 past the bound. Not werkzeug's ValidationError: once the rule of one method of a path is
        chosen, that reads as "no rule for this method" and answers 405 naming the path's other methods."""
        try:
            return super().to_python(value)
        except ValidationError:
            raise NotFound() from None


def create_app(rt: Runtime) -> Flask:
    """A Flask app with every declared route, auth, rate limits, body limit, JSON errors, request metrics, the
    audit trail and the OpenAPI document."""
    app = Flask("engine.api")
    app.url_map.converters["int"] = IdConverter  # before any rule is added: every <int:…> in a path is an id
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = rt.settings.max_body_bytes
    app.extensions["runtime"] = rt
    register_error_handlers(app)
    install_request_metrics(app, rt.telemetry)  # first: its timer must run before the rate limit can refuse
    install_rate_limit(app)
    install_audit_trail(app)  # an after_request hook: it sees every answer, refusals and errors included
    for part in PARTS:
        app.register_blueprint(part.blueprint)
    document = build_document(declared_routes(), VERSION)
    document_exposition(document)
    app.extensions["openapi"] = document
    return app
