"""API plumbing: one real demo process as a target, and a started engine behind the Flask test client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from contract.roles import Role
from contract.settings import Settings
from engine.api import create_app
from engine.fleet.demo import start_demo_instance
from engine.fleet.processes import LoopbackInstance, stop_all, wait_ready
from engine.runtime import Runtime
from tests.conftest import free_port, token_for, wait_for


@contextmanager
def demo_process(seed: int) -> Iterator[LoopbackInstance]:
    """A demo service process called orders on a port free at run time."""
    instance = start_demo_instance("orders", free_port(), seed=seed)
    try:
        wait_ready([instance])
        yield instance
    finally:
        stop_all([instance.process])


@contextmanager
def started_client(settings: Settings, target_url: str, **overrides: Any) -> Iterator[tuple[Runtime, Any]]:
    """A started engine (loop, no HTTP server) with orders registered at target_url and healthy; an operator client."""
    rt = Runtime.open(settings.replace(**overrides))
    rt.start()
    c = create_app(rt).test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.OPERATOR)
    try:
        assert c.post("/api/services", json={"name": "orders", "url": target_url}).status_code == 201
        assert wait_for(lambda: health(rt) == "healthy", 10), "the demo instance never became healthy"
        yield rt, c
    finally:
        rt.stop()


def health(rt: Runtime) -> str:
    """The damped health of orders' only instance."""
    spec = rt.registry.by_name("orders")
    assert spec is not None
    return rt.health_of(spec.instances[0].id).value
