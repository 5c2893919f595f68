"""One place that maps the exception tree (and werkzeug's and the database's errors) to ErrorOut answers."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from contract.errors import ApiError, RateLimited, Unauthorized
from contract.responses import ErrorOut
from engine.api.routing import serialize

__all__ = ["error_response", "register_error_handlers"]

log = logging.getLogger("engine.api")


def error_response(status: int, message: str, details: list[dict[str, Any]] | None = None) -> Response:
    """The one JSON error shape, sent with `status`."""
    return serialize(ErrorOut(error=message, details=details or []), status)


def register_error_handlers(app: Flask) -> None:
    """JSON for every error: ApiError subclasses, HTTP errors, database outages, bugs."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        response = error_response(exc.status, exc.message, exc.details)
        if isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="microservice-monitor"'
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> Response:
        limit = app.config["MAX_CONTENT_LENGTH"]
        return error_response(413, exc.name, [{"field": "body", "message": f"larger than {limit} bytes"}])

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        response = error_response(exc.code or 500, exc.description or exc.name)
        for key, value in exc.get_headers():
            if key.lower() != "content-type":
                response.headers[key] = value  # e.g. Allow on 405
        return response

    @app.errorhandler(OperationalError)
    def _db_down(exc: OperationalError) -> Response:
        log.warning("database unavailable: %s", exc.orig)
        return error_response(503, "database unavailable")

    @app.errorhandler(DataError)
    def _bad_value(exc: DataError) -> Response:
        # a value the schema let through but PostgreSQL cannot store or compare: the caller's, not ours
        log.warning("value refused by the database: %s", exc.orig)
        return error_response(400, "a value in the request cannot be used", [{"message": str(exc.orig)[:200]}])

    @app.errorhandler(Exception)
    def _bug(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal error", [{"type": type(exc).__name__}])
