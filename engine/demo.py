"""The demo fleet: 3 services x 2 instances as real OS processes on loopback, registered as managed."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Instance, Service
from engine.errors import ProcessError
from engine.logs import event_logger
from engine.processes import spawn, stop_all

__all__ = ["DEMO_SERVICES", "DemoFleet", "DemoInstance", "free_port", "start_demo_instance"]

DEMO_SERVICES = ("orders", "payments", "inventory")
log = event_logger("demo")


@dataclass
class DemoInstance:
    """A running demo process."""

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
    argv = [sys.executable, "-m", "engine.demo_service", "--name", service, "--port", str(port),
            "--seed", str(seed)]
    log_path = log_dir / f"demo-{service}-{port}.log" if log_dir else None
    return DemoInstance(service, port, spawn(argv, log_path=log_path, cwd=Path(__file__).parent.parent))


def wait_ready(instances: list[DemoInstance], timeout: float = 20.0) -> None:
    """Wait until every instance answers /health with 200; raise ProcessError otherwise."""
    deadline = time.monotonic() + timeout
    pending = list(instances)
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while pending:
            for inst in list(pending):
                if inst.process.poll() is not None:
                    raise ProcessError(f"demo instance {inst.url} exited with code {inst.process.returncode}")
                try:
                    if client.get(inst.url + "/health").status_code == 200:
                        pending.remove(inst)
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                raise ProcessError(f"demo instances not ready after {timeout:g} s: {[i.url for i in pending]}")
            if pending:
                time.sleep(0.1)


class DemoFleet:
    """Starts, registers and stops the demo services."""

    def __init__(
        self,
        port_base: int,
        seed: int,
        *,
        services: tuple[str, ...] = DEMO_SERVICES,
        instances_per_service: int = 2,
        log_dir: Path | None = None,
    ) -> None:
        self._port_base = port_base
        self._seed = seed
        self._services = services
        self._per_service = instances_per_service
        self._log_dir = log_dir
        self.instances: list[DemoInstance] = []

    def start(self, session_factory: sessionmaker[Session]) -> None:
        """Launch all processes, wait for them, then register them (replacing stale demo instances)."""
        taken: set[int] = set()
        try:
            for n, service in enumerate(self._services):
                for k in range(self._per_service):
                    port = free_port(self._port_base, taken)
                    taken.add(port)
                    seed = self._seed * 100 + n * 10 + k
                    self.instances.append(start_demo_instance(service, port, seed, self._log_dir))
            wait_ready(self.instances)
        except Exception:
            self.stop()
            raise
        with session_factory.begin() as session:
            self._register(session)
        log.info(
            "demo fleet up: %d services, %d instances", len(self._services), len(self.instances),
            extra={"meta": {"instances": [i.url for i in self.instances]}},
        )

    def _register(self, session: Session) -> None:
        for service in self._services:
            row = session.scalar(select(Service).where(Service.name == service))
            if row is None:
                row = Service(name=service, health_path="/health", metrics_path="/metrics", weight=1, managed=True)
                session.add(row)
            row.managed = True
            row.status = "unknown"
            row.instances.clear()
            session.flush()
            for inst in self.instances:
                if inst.service == service:
                    row.instances.append(Instance(url=inst.url, pid=inst.process.pid))

    def kill(self, service: str) -> str | None:
        """Terminate one running instance process of service (chaos); its URL, or None if none runs."""
        running = [i for i in self.instances if i.service == service and i.process.poll() is None]
        if not running:
            return None
        victim = running[-1]
        stop_all([victim.process], timeout=2.0)
        return victim.url

    def stop_service(self, service: str) -> None:
        """Stop the processes of one demo service (it was deleted)."""
        mine = [i for i in self.instances if i.service == service]
        stop_all([i.process for i in mine])
        self.instances = [i for i in self.instances if i.service != service]

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every demo process."""
        stop_all([i.process for i in self.instances], timeout)
        self.instances = []
