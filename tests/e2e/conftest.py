"""End-to-end plumbing: a started engine with its API on a real port and the demo fleet as real processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from contract.roles import Role
from contract.settings import Settings
from engine.api import create_app
from engine.runtime import Runtime
from tests.conftest import token_for, wait_for


@contextmanager
def running_fleet(settings: Settings, **overrides: Any) -> Iterator[tuple[Runtime, httpx.Client]]:
    """The engine with the demo fleet (on settings' free ports) and an operator's API client, every instance healthy."""
    rt = Runtime.open(settings.replace(**overrides))
    rt.start(demo=True, app=create_app(rt))
    api = httpx.Client(base_url=settings.api_base_url, trust_env=False, timeout=10,
                       headers={"Authorization": "Bearer " + token_for(Role.OPERATOR)})
    try:
        assert wait_for(lambda: all(i["status"] == "healthy" for s in api.get("/api/services").json()
                                    for i in s["instances"]), 15), "demo fleet never became healthy"
        yield rt, api
    finally:
        api.close()
        rt.stop()


def run_to_end(api: httpx.Client, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Start a load test and poll its status until it is no longer running; the final status."""
    r = api.post("/api/load-test/start", json=body)
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + timeout
    while (st := api.get("/api/load-test/status").json())["status"] == "running":
        assert time.monotonic() < deadline, st
        time.sleep(0.2)
    return dict(st)
