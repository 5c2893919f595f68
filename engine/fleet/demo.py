"""The demo fleet: 3 managed services (launch commands) x 2 instances, real OS processes on loopback."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contract.errors import ProcessError
from db.models import Service
from engine.fleet.processes import spawn
from engine.store.logs import event_logger

if TYPE_CHECKING:
    from engine.fleet.managed import ManagedFleet

__all__ = [
    "DEMO_SERVICES", "DemoInstance", "demo_command", "free_port", "start_demo_fleet", "start_demo_instance",
    "wait_ready",
]

DEMO_SERVICES = ("orders", "payments", "inventory")
log = event_logger("demo")


@dataclass
class DemoInstance:
    """A service instance process on loopback (demo or managed)."""

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


def start_demo_instance(service: str, port: int, seed: int, log_dir: Path | None = None) -> DemoInstance:
    """Launch one demo process (does not wait for it)."""
    argv = [sys.executable, "-m", "engine.fleet.demo_service", "--name", service, "--port", str(port),
            "--seed", str(seed)]
    log_path = log_dir / f"demo-{service}-{port}.log" if log_dir else None
    return DemoInstance(service, port, spawn(argv, log_path=log_path, cwd=Path(__file__).resolve().parents[2]))


class _Process(Protocol):
    @property
    def url(self) -> str: ...

    @property
    def process(self) -> subprocess.Popen[bytes]: ...


def wait_ready(instances: Sequence[_Process], timeout: float = 20.0, path: str = "/health") -> None:
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


def demo_command(service: str, seed: int) -> str:
    """The launch command of a demo service ({port} is filled in per instance)."""
    return (f"{shlex.quote(sys.executable)} -m engine.fleet.demo_service --name {service} --port {{port}} "
            f"--seed {seed}")


def start_demo_fleet(sessions: sessionmaker[Session], fleet: ManagedFleet, seed: int, per_service: int = 2) -> None:
    """Register the demo services as managed (launch command, 1..6 instances) and start `per_service` each.

    Instances left registered by an earlier run are dropped first: their processes died with that engine.
    """
    ids = []
    with sessions.begin() as session:
        for n, name in enumerate(DEMO_SERVICES):
            row = session.scalar(select(Service).where(Service.name == name))
            if row is None:
                row = Service(name=name, health_path="/health", metrics_path="/metrics", weight=1)
                session.add(row)
            row.managed = True
            row.launch_command = demo_command(name, seed * 100 + n)
            row.min_instances, row.max_instances = 1, 6
            row.status = "unknown"
            row.instances.clear()
            session.flush()
            ids.append(row.id)
    with ThreadPoolExecutor(len(ids)) as pool:  # the services start side by side
        started = list(pool.map(lambda i: fleet.start(i, per_service), ids))
    log.info("demo fleet up: %d services, %d instances", len(ids), sum(len(s) for s in started),
             extra={"meta": {"instances": [i.url for s in started for i in s]}})
