"""Request bodies and query strings parsed into contract models; a wrong field is a ValidationFailed naming it.

Bodies are validated as JSON in pydantic's strict mode: a value must have the JSON type its schema says (`false` is
not the integer 0, `"5"` not the number 5), as the OpenAPI document promises; ISO dates and enum values are strings
in JSON and stay accepted.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import Request
from pydantic import BaseModel, ValidationError

from contract.errors import ValidationFailed

__all__ = ["parse_body", "parse_query", "validate_as"]

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


def _integral(value: Any) -> Any:
    """value with every float that has no fraction made an int: JSON Schema's integer is any number without one
    (`3.0` is one), which pydantic's strict mode would refuse; a float field takes an int as it is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def _validate(model: type[M], data: Any, status: int, prefix: tuple[str, ...] = (), *, strict: bool = False) -> M:
    try:
        if strict:  # JSON's own types: a re-encoded parsed body, already bounded in size and depth
            return model.model_validate_json(json.dumps(_integral(data)), strict=True)
        return model.model_validate(data)
    except ValidationError as exc:
        details: list[dict[str, str]] = []
        for e in exc.errors(include_url=False, include_input=False):
            field = _field((*prefix, *e["loc"]))
            if all(d["field"] != field for d in details):  # a union reports once per member: keep the first
                details.append({"field": field, "message": e["msg"].removeprefix("Value error, ")})
        raise ValidationFailed(details, status=status) from None


def validate_as(model: type[M], data: Any, field: str) -> M:
    """Validate a part of a body (a free-form object checked against a model chosen by another field): a wrong
    value is 422 naming it under `field` (e.g. `config.to`)."""
    return _validate(model, data, 422, (field,), strict=True)


MAX_DEPTH = 32  # objects and arrays within each other; no request of ours needs more than a few


def _depth(value: Any) -> int:
    """How deeply objects and arrays nest in a parsed JSON value (iterative: a hostile body cannot recurse us)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_body(model: type[M], request: Request) -> M:
    """Validate the JSON body: not a JSON object, or one nested deeper than MAX_DEPTH, is 400; a wrong field 422
    naming it."""
    too_deep = ValidationFailed([{"field": "body", "message": f"nested deeper than {MAX_DEPTH} levels"}], status=400)
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # the JSON parser's own recursion: thousands of levels
        raise too_deep from None
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "body", "message": "request body must be a JSON object"}], status=400)
    if _depth(data) > MAX_DEPTH:
        raise too_deep
    return _validate(model, data, 422, strict=True)


def parse_query(model: type[M], request: Request) -> M:
    """Validate the query string: a repeated, unknown or wrong parameter is 400 naming it."""
    repeated = [k for k in request.args if len(request.args.getlist(k)) > 1]
    if repeated:
        raise ValidationFailed([{"field": k, "message": "given more than once"} for k in repeated], status=400)
    return _validate(model, request.args.to_dict(), 400)
