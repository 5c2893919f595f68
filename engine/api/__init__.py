"""The REST API: create_app(runtime) builds a Flask app over a running engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from engine.api.routing import ApiBlueprint, Route
    from engine.runtime import Runtime

__all__ = ["VERSION", "create_app", "declared_routes", "runtime"]

VERSION = "0.2.0"


def runtime() -> Runtime:
    """The engine runtime the current app serves."""
    rt: Runtime = current_app.extensions["runtime"]
    return rt


def _parts() -> tuple[ApiBlueprint, ...]:
    from engine.api import (
        chaos,
        docs,
        loadtests,
        logs,
        prometheus,
        proxy,
        scaling,
        services,
        status,
        storage,
        traffic,
        users,
    )

    return (status.api, users.api, services.api, scaling.api, traffic.api, loadtests.api, chaos.api, logs.api,
            storage.api, proxy.api, docs.api, prometheus.api)


def declared_routes() -> list[Route]:
    """Every route of the API, as declared (role, schemas, statuses)."""
    return [route for part in _parts() for route in part.routes]


def create_app(rt: Runtime) -> Flask:
    """A Flask app with every declared route, auth, rate limits, body limit, JSON errors, request metrics and the
    OpenAPI document."""
    from engine.api.auth import install_rate_limit
    from engine.api.errors import register_error_handlers
    from engine.api.openapi import build_document
    from engine.api.prometheus import document_exposition, install_request_metrics

    app = Flask("engine.api")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = rt.settings.max_body_bytes
    app.extensions["runtime"] = rt
    register_error_handlers(app)
    install_request_metrics(app, rt.telemetry)  # first: its timer must run before the rate limit can refuse
    install_rate_limit(app)
    for part in _parts():
        app.register_blueprint(part.blueprint)
    document = build_document(declared_routes(), VERSION)
    document_exposition(document)
    app.extensions["openapi"] = document
    return app
