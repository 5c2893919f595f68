"""`python -m engine up --demo` as a user runs it: everything up, Ctrl-C stops all, data survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import free_port, free_port_base

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(step)
    return None


def start(env):
    return subprocess.Popen([sys.executable, "-m", "engine", "up", "--demo"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc):
    """Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return out.decode()


def descendants(pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_up_serves_everything_and_ctrl_c_stops_everything(pg_dir):
    api_port, dash_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATA_DIR=str(pg_dir), API_PORT=str(api_port), PROXY_PORT="0", DASHBOARD_PORT=str(dash_port),
               DEMO_PORT_BASE=str(free_port_base(20)), HEALTH_INTERVAL="1", COLLECT_INTERVAL="1")
    env.pop("ADMIN_PASSWORD", None)
    env.pop("JWT_SECRET", None)
    api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", trust_env=False, timeout=5)

    proc = start(env)
    try:
        assert wait_for(lambda: api.get("/api/health").status_code == 200, 60)
        password = (pg_dir / "admin_password").read_text().strip()
        assert len(password) >= 12
        token = api.post("/api/auth/token", json={"username": "admin", "password": password}).json()["token"]
        api.headers["Authorization"] = f"Bearer {token}"
        services = wait_for(lambda: [s for s in api.get("/api/services").json() if s["status"] == "healthy"], 60)
        assert services and len(services) == 3
        assert sum(s["instanceCount"] for s in api.get("/api/services").json()) == 6
        assert api.get("/api/health").json()["database"] == {"embedded": True, "status": "up"}
        dash = wait_for(lambda: httpx.get(f"http://127.0.0.1:{dash_port}/_stcore/health", trust_env=False), 30)
        assert dash is not None and dash.status_code == 200 and dash.text == "ok"
        children = descendants(proc.pid)
        assert len(children) >= 7  # dashboard + 6 demo instances (+ postgres, run by pg_ctl, detached)
        began = time.monotonic()
        out = stop(proc)
        assert proc.returncode == 0, out
        assert time.monotonic() - began < 10
        assert f"Log in as 'admin' with password {password} (shown once" in out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(pg_dir) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []  # the embedded PostgreSQL stopped too

    proc = start(env)  # the second run finds the first run's logs, users and signing secret
    try:
        assert wait_for(lambda: api.get("/api/health").status_code == 200, 60)
        assert api.get("/api/services").status_code == 200  # the first run's token still verifies
        logs = wait_for(lambda: api.get("/api/logs", params={"q": "demo fleet up", "limit": 10}).json(), 60)
        assert logs is not None
        wait_for(lambda: len(api.get("/api/logs", params={"q": "demo fleet up"}).json()) >= 2, 10)
        assert len(api.get("/api/logs", params={"q": "demo fleet up"}).json()) == 2
        assert any(r["message"] == "engine stopped" for r in api.get("/api/logs", params={"q": "stopped"}).json())
    finally:
        out = stop(proc)
    assert f"its password is in {pg_dir / 'admin_password'}" in out and password not in out


def test_user_add_reads_the_password_from_stdin(clean_db, database_url, tmp_path):
    from engine.security.users import authenticate

    env = dict(os.environ, DATABASE_URL=database_url, DATA_DIR=str(tmp_path), ADMIN_PASSWORD="first-admin-pw")
    done = subprocess.run([sys.executable, "-m", "engine", "user", "add", "bob", "--role", "operator"], check=False,
                          cwd=ROOT,
                          env=env, input="bobs-password-1\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "user bob added with role operator" in done.stdout and "bobs-password-1" not in done.stdout + done.stderr
    again = subprocess.run([sys.executable, "-m", "engine", "user", "add", "bob", "--role", "viewer"], check=False,
                           cwd=ROOT,
                           env=env, input="another-password\n", capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr
    from db.session import make_session_factory

    with make_session_factory(clean_db)() as s:
        user = authenticate(s, "bob", "bobs-password-1")
        assert user is not None and user.role == "operator"
