"""One place that maps the exception tree (and pydantic) to JSON errors."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from flask import Flask, Request, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from engine.errors import ApiError, ValidationFailed

__all__ = ["parse_body", "register_error_handlers"]

log = logging.getLogger("engine.api")
M = TypeVar("M", bound=BaseModel)


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def parse_body(model: type[M], request: Request) -> M:
    """Validate the JSON body; a missing or malformed body is 400, a wrong field 422 naming it."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationFailed(
            [{"field": "body", "message": "request body must be a JSON object"}], status=400
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [
            {"field": _field(e["loc"]), "message": e["msg"].removeprefix("Value error, ")}
            for e in exc.errors(include_url=False)
        ]
        raise ValidationFailed(details) from None


def register_error_handlers(app: Flask) -> None:
    """JSON for every error: ApiError subclasses, HTTP errors, database outages, bugs."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> ResponseReturnValue:
        return jsonify({"error": exc.message, "details": exc.details}), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        return jsonify({"error": exc.description or exc.name, "details": []}), exc.code or 500

    @app.errorhandler(OperationalError)
    def _db_down(exc: OperationalError) -> ResponseReturnValue:
        log.warning("database unavailable: %s", exc.orig)
        return jsonify({"error": "database unavailable", "details": []}), 503

    @app.errorhandler(Exception)
    def _bug(exc: Exception) -> ResponseReturnValue:
        log.exception("unhandled error")
        return jsonify({"error": "internal error", "details": [{"type": type(exc).__name__}]}), 500
