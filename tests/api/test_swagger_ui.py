"""/api/docs: a Swagger UI page and its files served by the engine itself, public, outside the OpenAPI document."""

from __future__ import annotations

import re

import pytest

from engine.api.docs import DOCS_PATH, SWAGGER_UI_ASSETS


def test_the_page_loads_only_files_the_engine_serves(anon):
    page = anon.get(DOCS_PATH)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    loaded = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert loaded and all(not re.match(r"^[a-z]+:|^//", url) for url in loaded), loaded  # relative: no other host
    assert {url.removeprefix("docs/") for url in loaded} <= SWAGGER_UI_ASSETS
    assert 'url: "openapi.json"' in html and "validatorUrl: null" in html


@pytest.mark.parametrize("asset", sorted(SWAGGER_UI_ASSETS))
def test_each_asset_is_served(anon, asset):
    r = anon.get(f"{DOCS_PATH}/{asset}")
    assert r.status_code == 200 and len(r.data) > 0
    assert "max-age" in r.headers["Cache-Control"]


@pytest.mark.parametrize("path", ["LICENSE", "oauth2-redirect.html", "..%2Fflask_swagger_ui.py", ""])
def test_nothing_else_is_served(anon, path):
    assert anon.get(f"{DOCS_PATH}/{path}").status_code == 404


def test_the_ui_is_not_an_operation_of_the_document(anon):
    assert not [p for p in anon.get("/api/openapi.json").json["paths"] if p.startswith(DOCS_PATH)]
