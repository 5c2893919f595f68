"""The API's documentation: /api/openapi.json, the document create_app built from every declared route, and
/api/docs, a Swagger UI over it served from the flask-swagger-ui package's files, so it works without internet.

The Swagger UI's pages are not operations of the API: they are plain routes of this blueprint, outside the document.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from flask import Response, current_app, jsonify, send_from_directory
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from engine.api.routing import ApiBlueprint

__all__ = ["DOCS_PATH", "SWAGGER_UI_ASSETS", "api", "swagger_ui_dir"]

DOCS_PATH = "/api/docs"
# what the page loads; nothing else of the package is served
SWAGGER_UI_ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"})
ASSET_MAX_AGE_S = 86_400

# Relative addresses: the page at /api/docs loads docs/<asset> and openapi.json from /api/, so it also works behind
# a reverse proxy that mounts the engine under a prefix. validatorUrl null: no badge fetched from the validator.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Microservice Monitor API</title>
  <link rel="stylesheet" href="docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="docs/favicon-16x16.png" sizes="16x16">
  <style>body { margin: 0; background: #fafafa; }</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    });
  </script>
</body>
</html>
"""

api = ApiBlueprint("docs", tag="docs")


@api.route("GET", "/api/openapi.json", summary="This OpenAPI document", role=None, ok=(200, None))
def openapi() -> ResponseReturnValue:
    """The OpenAPI 3.1 document of every route."""
    return jsonify(current_app.extensions["openapi"])


@cache
def swagger_ui_dir() -> Path:
    """The directory of Swagger UI's built files inside the installed flask-swagger-ui package."""
    return Path(str(resources.files("flask_swagger_ui") / "dist"))


def swagger_ui() -> Response:
    """The Swagger UI page (public, like the document it shows)."""
    return Response(PAGE, mimetype="text/html")


def swagger_ui_asset(asset: str) -> Response:
    """One of the files the Swagger UI page loads; 404 for anything else."""
    if asset not in SWAGGER_UI_ASSETS:
        raise NotFound()
    return send_from_directory(swagger_ui_dir(), asset, max_age=ASSET_MAX_AGE_S)


api.blueprint.add_url_rule(DOCS_PATH, "swagger_ui", swagger_ui, methods=["GET"])
api.blueprint.add_url_rule(f"{DOCS_PATH}/<asset>", "swagger_ui_asset", swagger_ui_asset, methods=["GET"])
