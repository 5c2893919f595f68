"""No child process of the engine is given its secrets: a managed instance gets a minimal environment, the dashboard
everything but the secret variables. Read back from /proc/<pid>/environ of a real instance."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from contract.roles import Role
from contract.settings import SECRET_VARS, Settings
from engine.api import create_app
from engine.fleet.processes import minimal_env
from engine.runtime import Runtime
from tests.conftest import token_for

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc/<pid>/environ (Linux)")


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def test_the_secret_variables_are_the_settings_secrets():
    assert {"JWT_SECRET", "ADMIN_PASSWORD"} <= SECRET_VARS


def test_a_minimal_environment_keeps_paths_and_locale_only():
    env = minimal_env({"PATH": "/bin", "HOME": "/root", "LC_ALL": "C.UTF-8", "LANG": "C", "JWT_SECRET": "x" * 40,
                       "ADMIN_PASSWORD": "secret-pass", "DATABASE_URL": "postgresql://u:p@h/db", "AWS_SECRET": "y"})
    assert env == {"PATH": "/bin", "HOME": "/root", "LC_ALL": "C.UTF-8", "LANG": "C"}


def test_a_managed_instance_holds_none_of_the_engines_secrets(clean_db, settings: Settings,
                                                            monkeypatch: pytest.MonkeyPatch):
    for name, value in (("JWT_SECRET", "j" * 40), ("ADMIN_PASSWORD", "admin-pass-in-env"),
                        ("DATABASE_URL", settings.database_url or ""), ("SOME_TOKEN", "t0ken")):
        monkeypatch.setenv(name, value)
    rt = Runtime.open(settings)
    rt.start(app=create_app(rt))
    try:
        command = f"{sys.executable} -m engine.fleet.demo_service --name shop --port {{port}} --seed 7"
        with httpx.Client(base_url=settings.api_base_url, trust_env=False, timeout=30,
                          headers={"Authorization": "Bearer " + token_for(Role.ADMIN, "admin")}) as admin:
            created = admin.post("/api/services", json={"name": "shop", "launchCommand": command, "minInstances": 1,
                                                       "maxInstances": 2})
            assert created.status_code == 201, created.text
        [instance] = rt.fleet.running("shop")
        env = environ_of(instance.process.pid)
        assert not set(env) & {"JWT_SECRET", "ADMIN_PASSWORD", "DATABASE_URL", "SOME_TOKEN"}, sorted(env)
        assert env.get("PATH")  # it can still find programs
    finally:
        rt.stop()
