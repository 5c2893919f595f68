"""The dashboard that `python -m engine up` starts is the only process given the run's dashboard secret (the one
that lets it name its browsers' addresses to the API): read back from /proc/<pid>/environ of the real child."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from contract.roles import DASHBOARD_SECRET_VAR
from contract.settings import SECRET_VARS, Settings
from engine.__main__ import _dashboard
from engine.fleet.processes import minimal_env, stop_all
from engine.runtime import Runtime
from tests.security.test_child_environment import environ_of

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc/<pid>/environ (Linux)")


def test_the_dashboard_alone_holds_the_runs_secret(clean_db, settings: Settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("JWT_SECRET", "j" * 40)
    rt = Runtime.open(settings)
    try:
        dashboard = _dashboard(settings, rt)
        try:
            env = environ_of(dashboard.pid)
        finally:
            stop_all([dashboard])
        assert env[DASHBOARD_SECRET_VAR] == rt.dashboard_secret and len(rt.dashboard_secret) >= 40
        assert not set(env) & SECRET_VARS
        assert DASHBOARD_SECRET_VAR not in os.environ  # so no other child inherits it
        assert DASHBOARD_SECRET_VAR not in minimal_env({**os.environ, **env})  # nor a managed instance
        other = Runtime.open(settings)
        try:
            assert other.dashboard_secret != rt.dashboard_secret  # a new one every run
        finally:
            other.stop()
    finally:
        rt.stop()
