"""Declared routes: one decorator authorizes, validates body and query, and records the route for OpenAPI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel

from contract.roles import Role
from engine.api.auth import authorize
from engine.api.validation import parse_body, parse_query

__all__ = ["ApiBlueprint", "Route", "serialize"]

View = Callable[..., Any]


def serialize(value: Any, status: int = 200) -> Response:
    """The one way a contract model (or a list of them) becomes a JSON response: camelCase aliases, JSON types."""
    if isinstance(value, BaseModel):
        payload: Any = value.model_dump(mode="json", by_alias=True)
    elif isinstance(value, list) and all(isinstance(v, BaseModel) for v in value):
        payload = [v.model_dump(mode="json", by_alias=True) for v in value]
    else:
        raise TypeError(f"a view returned {type(value).__name__}, not a contract model")
    response = jsonify(payload)
    response.status_code = status
    return response


@dataclass(frozen=True)
class Route:
    """What OpenAPI and the authorization matrix know about one operation."""

    method: str
    rule: str
    summary: str
    tag: str
    role: Role | None
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    ok_status: int
    ok_model: Any
    errors: tuple[int, ...]
    csv: bool = False
    operation_id: str = ""
    same_shape: tuple[int, ...] = ()
    raw: bool = False  # the answer is whatever the upstream sent (the proxy)
    headers: tuple[tuple[str, str], ...] = ()  # (name, description) of integer headers the ok answer carries
    html: bool = False  # the ok answer may also be an HTML page (a report)


@dataclass
class ApiBlueprint:
    """A Flask blueprint whose routes are declared with their role and schemas."""

    name: str
    tag: str
    blueprint: Blueprint = field(init=False)
    routes: list[Route] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.blueprint = Blueprint(self.name, self.name)

    def route(
        self,
        method: str,
        rule: str,
        *,
        summary: str,
        role: Role | None,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        ok: tuple[int, Any] = (200, None),
        errors: tuple[int, ...] = (),
        csv: bool = False,
        same_shape: tuple[int, ...] = (),
        methods: tuple[str, ...] = (),
        raw: bool = False,
        headers: tuple[tuple[str, str], ...] = (),
        html: bool = False,
    ) -> Callable[[View], View]:
        """Register view for method+rule. role None = public; body/query models are parsed and passed in.

        A view returns a contract model (or a list of them), sent with the ok status through `serialize`, or a
        Flask response of its own (CSV, the proxy's upstream answer, a status other than ok's).

        `errors` lists statuses answered with the error shape; `same_shape` those answered with the ok model;
        `methods` registers one view for several methods; `raw` documents an answer of any type (the proxy);
        `headers` documents integer headers of the ok answer as (name, description) (the view sets them); `html`
        documents an HTML page as another form of the ok answer.
        """

        def decorate(view: View) -> View:
            @wraps(view)
            def handler(**kwargs: Any) -> ResponseReturnValue:
                authorize(role)
                if query is not None:
                    kwargs["query"] = parse_query(query, request)
                if body is not None:
                    kwargs["body"] = parse_body(body, request)
                result = view(**kwargs)
                if isinstance(result, BaseModel | list):
                    return serialize(result, ok[0])
                response: ResponseReturnValue = result
                return response

            every = methods or (method,)
            self.blueprint.add_url_rule(rule, view.__name__, handler, methods=list(every))
            for m in every:
                op_id = view.__name__ if len(every) == 1 else f"{view.__name__}_{m.lower()}"
                self.routes.append(
                    Route(m, rule, summary, self.tag, role, body, query, ok[0], ok[1], errors, csv,
                          operation_id=op_id, same_shape=same_shape, raw=raw, headers=headers, html=html)
                )
            return handler

        return decorate
