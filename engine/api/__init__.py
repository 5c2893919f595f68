"""The REST API: create_app(runtime) builds a Flask app over a running engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app

from engine.api.errors import register_error_handlers

if TYPE_CHECKING:
    from engine.runtime import Runtime

__all__ = ["create_app", "runtime"]


def runtime() -> Runtime:
    """The engine runtime the current app serves."""
    rt: Runtime = current_app.extensions["runtime"]
    return rt


def create_app(rt: Runtime) -> Flask:
    """A Flask app with every blueprint and the JSON error handler."""
    from engine.api.logs import bp as logs_bp
    from engine.api.services import bp as services_bp
    from engine.api.status import bp as status_bp

    app = Flask("engine.api")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["runtime"] = rt
    register_error_handlers(app)
    for bp in (status_bp, services_bp, logs_bp):
        app.register_blueprint(bp)
    return app
