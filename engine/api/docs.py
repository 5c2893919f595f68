"""/api/openapi.json: the document create_app built from every declared route."""

from __future__ import annotations

from flask import current_app, jsonify
from flask.typing import ResponseReturnValue

from engine.api.routing import ApiBlueprint

__all__ = ["api"]

api = ApiBlueprint("docs", tag="docs")


@api.route("GET", "/api/openapi.json", summary="This OpenAPI document", role=None, ok=(200, None))
def openapi() -> ResponseReturnValue:
    """The OpenAPI 3.1 document of every route."""
    return jsonify(current_app.extensions["openapi"])
