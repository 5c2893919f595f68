"""The OpenAPI 3 document, built from the declared routes and the same pydantic schemas that validate."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contract.requests import MAX_ID
from contract.responses import ErrorOut
from engine.api.routing import Route

__all__ = ["build_document", "openapi_path"]

REF = "#/components/schemas/{model}"
_RULE_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
_REASONS = {
    400: "Malformed request or bad query parameter",
    401: "Missing, invalid or expired bearer token",
    403: "The token's role may not do this",
    404: "Not found",
    409: "Conflicts with existing state",
    413: "Request body too large",
    422: "A body field is invalid (details name it)",
    429: "Rate limited (see Retry-After)",
    502: "The upstream's address is refused by the SSRF guard, or its answer is past ROUTE_MAX_BODY_BYTES",
    503: "Unavailable: the database, or (proxy) no instance / breaker open",
    504: "The upstream did not answer in time",
}


def _models(routes: list[Route]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"ErrorOut": ErrorOut}
    for r in routes:
        for model in (r.body, r.query, _inner(r.ok_model)):
            if isinstance(model, type) and issubclass(model, BaseModel):
                found[model.__name__] = model
    return list(found.values())


def _inner(model: Any) -> Any:
    args = getattr(model, "__args__", None)  # list[Model]
    return args[0] if args else model


def _ref(model: Any) -> dict[str, Any]:
    if model is None:
        return {"type": "object"}
    inner = _inner(model)
    ref = {"$ref": REF.format(model=inner.__name__)}
    return {"type": "array", "items": ref} if inner is not model else ref


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: /api/services/<int:service_id> -> /api/services/{service_id}."""
    return _RULE_PARAM.sub(r"{\2}", rule)


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for converter, name in _RULE_PARAM.findall(rule):
        schema: dict[str, Any] = (
            {"type": "integer", "minimum": 1, "maximum": MAX_ID} if converter == "int" else {"type": "string"}
        )
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return openapi_path(rule), params


def _query_params(model: type[BaseModel], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    schema = schemas[model.__name__]
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema["properties"].items()
    ]


def _error_codes(route: Route, has_path_params: bool) -> set[int]:
    codes = set(route.errors) | {429}
    if route.role is not None:
        codes |= {401, 403}
    if route.body is not None:
        codes |= {400, 413, 422}
    if route.query is not None:
        codes |= {400}
    if has_path_params:
        codes |= {404}
    return codes


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    path, params = _path(route.rule)
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary, "tags": [route.tag]}
    if route.query is not None:
        params += _query_params(route.query, schemas)
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(route.body)}}}
    content: dict[str, Any] = (
        {"*/*": {"schema": {}}} if route.raw else {"application/json": {"schema": _ref(route.ok_model)}}
    )
    if route.csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    if route.html:
        content["text/html"] = {"schema": {"type": "string"}}
    ok_key = "default" if route.raw else str(route.ok_status)
    responses: dict[str, Any] = {ok_key: {"description": "the upstream's answer" if route.raw else "OK",
                                          "content": content}}
    if route.headers:
        responses[ok_key]["headers"] = {name: {"description": text, "schema": {"type": "integer"}}
                                        for name, text in route.headers}
    op["security"] = [{"bearerAuth": []}] if route.role is not None else []
    codes = _error_codes(route, has_path_params="{" in path)
    error = {"application/json": {"schema": _ref(ErrorOut)}}
    for code in sorted(codes - set(route.same_shape)):
        responses[str(code)] = {"description": _REASONS[code], "content": error}
    for code in route.same_shape:
        responses[str(code)] = {"description": _REASONS[code], "content": content}
    if 429 in codes:
        responses["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    if 401 in codes:
        responses["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    op["responses"] = responses
    return op


def build_document(routes: list[Route], version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document covering every declared route."""
    _, defs = models_json_schema([(m, "validation") for m in _models(routes)], ref_template=REF)
    schemas: dict[str, Any] = defs.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path, _ = _path(route.rule)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Microservice Monitor API",
            "version": version,
            "description": "Register, health-check and observe HTTP microservices. Errors are "
            '{"error", "details": [{"field", "message"}]}.',
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
