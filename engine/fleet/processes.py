"""Child OS processes: start them so they die with the engine, wait until they serve, stop them within a deadline."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from contract.errors import ProcessError

__all__ = ["LoopbackInstance", "free_port", "minimal_env", "spawn", "stop_all", "wait_ready"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # if the engine is killed with -9 the kernel sends SIGTERM to the child: no orphans
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


# what a managed instance inherits from the engine's environment: enough to find programs and run Python in the
# engine's locale, nothing of the engine's own configuration (its secrets above all)
_INHERITED = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV"})


def minimal_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a managed instance gets: PATH, HOME, locale, time zone, temp dir and Python's paths."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k in _INHERITED or k.startswith("LC_")}


def spawn(
    argv: list[str], env: Mapping[str, str] | None = None, log_path: Path | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a child in its own session (Ctrl-C reaches only the engine, which stops it in order)."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            argv,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if os.uname().sysname == "Linux" else None,  # noqa: PLW1509
        )
    finally:
        if log_path:
            out.close()  # type: ignore[union-attr]


def stop_all(processes: Iterable[subprocess.Popen[bytes]], timeout: float = 5.0) -> None:
    """SIGTERM every child's process group, wait up to timeout, then SIGKILL what is left."""
    procs = [p for p in processes if p.poll() is None]
    for p in procs:
        _signal_group(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(p, signal.SIGKILL)
            p.wait(2.0)


def _signal_group(p: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, sig)


@dataclass
class LoopbackInstance:
    """A service instance process listening on loopback (a demo one, or one the fleet manages)."""

    service: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """Its base URL on loopback."""
        return f"http://127.0.0.1:{self.port}"


def free_port(start: int, taken: set[int]) -> int:
    """The first port from start that nothing listens on and we have not handed out."""
    for port in range(start, min(start + 1000, 65536)):
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise ProcessError(f"no free loopback port in {start}..{start + 999}")


class _Serving(Protocol):
    @property
    def url(self) -> str: ...

    @property
    def process(self) -> subprocess.Popen[bytes]: ...


def wait_ready(instances: Sequence[_Serving], timeout: float = 20.0, path: str = "/health") -> None:
    """Wait until every instance answers path with 200; raise ProcessError when one exits or time is up."""
    deadline = time.monotonic() + timeout
    pending = list(instances)
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while pending:
            for inst in list(pending):
                if inst.process.poll() is not None:
                    raise ProcessError(f"instance {inst.url} exited with code {inst.process.returncode}")
                try:
                    if client.get(inst.url + path).status_code == 200:
                        pending.remove(inst)
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                raise ProcessError(f"instances not ready after {timeout:g} s: {[i.url for i in pending]}")
            if pending:
                time.sleep(0.05)
