"""Child OS processes: start them so they die with the engine, stop them within a deadline."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["spawn", "stop_all"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # if the engine is killed with -9 the kernel sends SIGTERM to the child: no orphans
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


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
