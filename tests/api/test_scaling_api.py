"""Scale actions on a managed service whose instances are real processes that answer /health only when let.

The service's launch command runs GATED: it serves /health once its gate file exists. With the gate
shut a new instance never becomes healthy, so a scale-up is held in progress for as long as the test
chooses (409 for a second action meanwhile) or, left shut, runs into `scale_ready_timeout` (503).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import select

from contract.roles import Role
from db.models import ScalingEvent, Service
from engine.api import create_app
from engine.runtime import Runtime
from tests.conftest import token_for, wait_for

READY_TIMEOUT_S = 1.5

GATED = '''
import http.server, os, sys, time
port, gate = int(sys.argv[1]), sys.argv[2]
while not os.path.exists(gate):
    time.sleep(0.02)

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", port), Health).serve_forever()
'''


@pytest.fixture
def rt(clean_db, settings) -> Iterator[Runtime]:
    runtime = Runtime.open(settings.replace(scale_ready_timeout=READY_TIMEOUT_S))
    yield runtime
    runtime.stop()


def client(rt: Runtime, role: Role) -> Any:
    c = create_app(rt).test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(role, "admin" if role is Role.ADMIN else None)
    return c


@pytest.fixture
def gated(rt, tmp_path) -> tuple[int, Path]:
    """The managed service `gated` (1..3 instances) with one healthy instance; its id and its gate, now shut."""
    script, gate = tmp_path / "gated.py", tmp_path / "gate"
    script.write_text(GATED)
    gate.touch()
    body = {"name": "gated", "launchCommand": f"{sys.executable} {script} {{port}} {gate}", "minInstances": 1,
            "maxInstances": 3}
    r = client(rt, Role.ADMIN).post("/api/services", json=body)
    assert r.status_code == 201 and r.json["instanceCount"] == 1, r.json
    gate.unlink()
    return r.json["id"], gate


def in_background(call) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(call()))
    thread.start()
    return thread, out


def scaling_rows(rt: Runtime) -> list[tuple[str, int, int]]:
    with rt.sessions() as s:
        rows = s.scalars(select(ScalingEvent).order_by(ScalingEvent.id))
        return [(e.direction, e.from_count, e.to_count) for e in rows]


def gated_pids() -> set[int]:
    """This test's live processes that run the gated script."""
    return {p.pid for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE and any(a.endswith("gated.py") for a in p.cmdline())}


def test_a_scale_action_while_another_is_in_progress_is_409(rt, gated):
    service_id, gate = gated
    op, other = client(rt, Role.OPERATOR), client(rt, Role.OPERATOR)
    first, answers = in_background(lambda: op.post(f"/api/services/{service_id}/scale-up"))
    try:
        # the second process is launched (inside the action) and waits at the shut gate: the action is in progress
        assert wait_for(lambda: len(rt.fleet.instances) == 2, 10)
        for action in ("scale-up", "scale-down"):
            r = other.post(f"/api/services/{service_id}/{action}")
            assert (r.status_code, r.json["error"]) == (409, "a scaling action on gated is in progress"), action
    finally:
        gate.touch()  # the launched instance answers /health: the first action completes
        first.join(READY_TIMEOUT_S + 10)
    assert not first.is_alive()
    assert answers[0].status_code == 200 and answers[0].json == {"message": "gated scaled up: 1 -> 2 instance(s)",
                                                                 "newInstanceCount": 2}
    assert len(rt.fleet.running("gated")) == 2
    assert scaling_rows(rt) == [("up", 1, 2)]  # the refused actions changed and recorded nothing


def test_an_instance_that_never_becomes_healthy_is_503_and_leaves_nothing_behind(rt, gated):
    service_id, gate = gated
    before = rt.fleet.running("gated")
    op = client(rt, Role.OPERATOR)
    call, answers = in_background(lambda: op.post(f"/api/services/{service_id}/scale-up"))
    call.join(READY_TIMEOUT_S + 10)  # bounds the test should the timeout be ignored; no timing is asserted
    assert not call.is_alive(), "the scale-up did not give up at scale_ready_timeout"
    r = answers[0]
    assert r.status_code == 503
    assert rt.fleet.instances == before  # the new one forgotten, and its process stopped:
    assert gated_pids() == {i.process.pid for i in before}
    assert r.json["error"].startswith(f"scaling gated failed: instances not ready after {READY_TIMEOUT_S:g} s: "
                                      "['http://127.0.0.1:"), r.json
    assert rt.fleet.running("gated") == before
    with rt.sessions() as s:
        assert len(s.scalars(select(Service).where(Service.name == "gated")).one().instances) == 1
    assert scaling_rows(rt) == []
    gate.touch()  # the lock was released: the next action runs
    r = op.post(f"/api/services/{service_id}/scale-up")
    assert (r.status_code, r.json["newInstanceCount"]) == (200, 2)
