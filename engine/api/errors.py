"""One place that maps the exception tree (and pydantic, werkzeug, the database) to JSON errors."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from flask import Flask, Request, Response, jsonify
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException

from contract.errors import ApiError, RateLimited, Unauthorized, ValidationFailed

__all__ = ["error_response", "parse_body", "parse_query", "register_error_handlers"]

log = logging.getLogger("engine.api")
M = TypeVar("M", bound=BaseModel)


def _union_tag(part: object) -> bool:
    """pydantic names the union member an error came from (`function-after[...]`, `InstanceIn`): not a field."""
    return isinstance(part, str) and (part[:1].isupper() or any(c in part for c in "[](),-"))


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if _union_tag(part):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _validate(model: type[M], data: Any, status: int) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details: list[dict[str, str]] = []
        for e in exc.errors(include_url=False, include_input=False):
            field = _field(e["loc"])
            if all(d["field"] != field for d in details):  # a union reports once per member: keep the first
                details.append({"field": field, "message": e["msg"].removeprefix("Value error, ")})
        raise ValidationFailed(details, status=status) from None


def parse_body(model: type[M], request: Request) -> M:
    """Validate the JSON body: not a JSON object is 400, a wrong field 422 naming it."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "body", "message": "request body must be a JSON object"}], status=400)
    return _validate(model, data, 422)


def parse_query(model: type[M], request: Request) -> M:
    """Validate the query string: a repeated, unknown or wrong parameter is 400 naming it."""
    repeated = [k for k in request.args if len(request.args.getlist(k)) > 1]
    if repeated:
        raise ValidationFailed([{"field": k, "message": "given more than once"} for k in repeated], status=400)
    return _validate(model, request.args.to_dict(), 400)


def error_response(status: int, message: str, details: list[dict[str, Any]] | None = None) -> Response:
    """The one JSON error shape."""
    response = jsonify({"error": message, "details": details or []})
    response.status_code = status
    return response


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
