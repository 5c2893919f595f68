"""Schemathesis over every operation in /api/openapi.json: no 5xx, every response as documented.

Each run draws a new seed and prints it; FUZZ_SEED=<seed> repeats a run's examples exactly (FUZZ_EXAMPLES sets how
many per operation). Reads share one started engine; an operation that changes state gets a clean one of its own.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, seed, settings
from schemathesis import checks

from contract.roles import Role
from engine.api import create_app, declared_routes
from engine.api.openapi import openapi_path
from engine.runtime import Runtime
from tests.conftest import settings_for, token_for, truncate_all

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
SEED = int(os.environ.get("FUZZ_SEED") or secrets.randbelow(2**32))
READS = {"GET", "HEAD", "OPTIONS"}
ROUTES = declared_routes()
READ_OPERATIONS = [f"{r.method} {openapi_path(r.rule)}" for r in ROUTES if r.method in READS]
ACTION_OPERATIONS = [f"{r.method} {openapi_path(r.rule)}" for r in ROUTES if r.method not in READS]


@pytest.fixture(scope="module", autouse=True)
def announced_seed(request: pytest.FixtureRequest) -> int:
    """The run's seed, written to the terminal whether the run passes or fails."""
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # past the capture of fixture output
            reporter.write_line(f"fuzz seed {SEED}: FUZZ_SEED={SEED} repeats these examples")
    return SEED


def start_app(rt: Runtime) -> Iterator[Flask]:
    """The API over rt once started (its traffic loop running), as a user meets it; rt stopped after."""
    try:
        rt.start()
        yield create_app(rt)
    finally:
        rt.stop()


@pytest.fixture(scope="class")
def shared_app(db_engine, database_url, tmp_path_factory) -> Iterator[Flask]:
    """One started engine over a clean database, for the operations that only read."""
    truncate_all(db_engine)
    yield from start_app(Runtime.open(settings_for(database_url, tmp_path_factory.mktemp("fuzz"))))


@pytest.fixture
def started_app(clean_db, settings) -> Iterator[Flask]:
    """A started engine of its own, for an operation that changes state."""
    yield from start_app(Runtime.open(settings))


def fuzz(app: Flask, operation: str) -> None:
    """MAX_EXAMPLES generated requests (seeded by SEED) against operation, each checked against the document."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    method, path = operation.split(" ", 1)
    op = schema[path][method]
    # an admin's token, so generated requests reach validation and the handlers behind it
    headers = {"Authorization": "Bearer " + token_for(Role.ADMIN, "admin")}

    # no example database: FUZZ_SEED alone decides the examples, so it repeats a run exactly
    @seed(SEED)
    @given(case=op.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        # positive_data_acceptance is left out: a schema-valid URL can still be refused by the SSRF
        # guard (INSTANCE_ALLOWLIST), which no JSON schema can express; that refusal is a documented 422
        # the proxy's 503 (no serving instance, breaker open) and 504 are its documented answers, so only the
        # document conformance checks apply to it
        excluded = [checks.positive_data_acceptance]
        if path.startswith("/proxy/"):
            excluded.append(checks.not_a_server_error)
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    try:
        run()
    except BaseException as e:  # schemathesis reports failures as a BaseExceptionGroup
        e.add_note(f"FUZZ_SEED={SEED} repeats this run's examples")
        raise


class TestReads:
    """Operations that only read: one engine answers them all."""

    @pytest.mark.parametrize("operation", READ_OPERATIONS)
    def test_operation_conforms(self, shared_app, operation):
        fuzz(shared_app, operation)


@pytest.mark.parametrize("operation", ACTION_OPERATIONS)
def test_operation_conforms(started_app, operation):
    fuzz(started_app, operation)
