"""GET /metrics with METRICS_TOKEN set answers only the scrape token (401 JSON with WWW-Authenticate otherwise, the
instance URLs nowhere in it); unset, it stays public and the engine's start warns so."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from contract.roles import Role
from contract.settings import SECRET_VARS, Settings
from engine.api import create_app
from engine.runtime import Runtime
from tests.conftest import token_for

TOKEN = "scrape-token-0123456789abcdef"
URL = "http://127.0.0.1:7999"


@pytest.fixture
def guarded(clean_db, settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.open(settings.replace(metrics_token=SecretStr(TOKEN)))
    yield rt
    rt.stop()


def register(rt: Runtime) -> None:
    admin = create_app(rt).test_client()
    created = admin.post("/api/services", json={"name": "shop", "url": URL},
                         headers={"Authorization": "Bearer " + token_for(Role.ADMIN, "admin")})
    assert created.status_code == 201, created.text


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-0123456789abc", "Bearer " + TOKEN[:-1],
                                           "Basic " + TOKEN, TOKEN, "a user's token"],
                         ids=["none", "wrong", "a-prefix", "basic", "no-scheme", "a-users-token"])
def test_without_the_scrape_token_metrics_is_401(guarded: Runtime, authorization: str | None):
    register(guarded)
    if authorization == "a user's token":  # made here: a user's token needs the test database
        authorization = "Bearer " + token_for(Role.ADMIN, "admin")
    headers = {"Authorization": authorization} if authorization else {}
    answer = create_app(guarded).test_client().get("/metrics", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert answer.is_json and answer.json is not None and "METRICS_TOKEN" in answer.json["error"]
    assert URL not in answer.text and "shop" not in answer.text


def test_with_the_scrape_token_metrics_answers(guarded: Runtime):
    register(guarded)
    answer = create_app(guarded).test_client().get("/metrics", headers={"Authorization": "Bearer " + TOKEN})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert f'url="{URL}"' in answer.text


def test_unset_metrics_is_public_and_the_start_says_so(clean_db, settings: Settings,
                                                      caplog: pytest.LogCaptureFixture):
    assert settings.metrics_token is None
    rt = Runtime.open(settings)
    try:
        with caplog.at_level(logging.WARNING):
            rt.start(app=create_app(rt))
        warnings = [r.getMessage() for r in caplog.records if "METRICS_TOKEN" in r.getMessage()]
        assert len(warnings) == 1 and "/metrics" in warnings[0]
        assert create_app(rt).test_client().get("/metrics").status_code == 200
    finally:
        rt.stop()


def test_the_scrape_token_is_a_secret_setting():
    assert "METRICS_TOKEN" in SECRET_VARS
    s = Settings.from_env({"METRICS_TOKEN": TOKEN})
    assert s.metrics_token is not None and s.metrics_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(s)
    assert Settings.from_env({"METRICS_TOKEN": ""}).metrics_token is None
