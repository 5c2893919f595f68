"""Child processes die with the engine, even when the engine is killed with -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.fleet.processes import spawn, stop_all
from tests.conftest import wait_for

PARENT = """
import sys, time
from engine.fleet.processes import spawn
child = spawn([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is gone for our purposes
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_child_dies_when_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert alive(child_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait(5)
    deadline = time.monotonic() + 5
    while alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child_pid)


def spawn_ready(tmp_path: Path, name: str, code: str):
    """A child running code that prints 'ready' once its signal handling is set; returned when it has."""
    log = tmp_path / f"{name}.log"
    child = spawn([sys.executable, "-c", code + "; print('ready', flush=True); time.sleep(60)"], log_path=log)
    assert wait_for(lambda: log.exists() and "ready" in log.read_text(), 10.0)
    return child


def test_stop_all_ends_a_child_that_honours_sigterm_with_sigterm(tmp_path):
    polite = spawn_ready(tmp_path, "polite", "import time")
    stop_all([polite], timeout=30.0)
    assert polite.returncode == -signal.SIGTERM  # it was asked first, and the ask was enough


def test_stop_all_escalates_to_sigkill(tmp_path):
    stubborn = spawn_ready(tmp_path, "stubborn", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    stop_all([stubborn], timeout=0.5)
    assert stubborn.returncode == -signal.SIGKILL
