"""The demo fleet: 3 managed services (launch commands) x 2 instances, real OS processes on loopback."""

from __future__ import annotations

import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Service
from engine.fleet.managed import ManagedFleet
from engine.fleet.processes import LoopbackInstance, spawn
from engine.store.logs import event_logger

__all__ = ["DEMO_SERVICES", "demo_command", "start_demo_fleet", "start_demo_instance"]

DEMO_SERVICES = ("orders", "payments", "inventory")
log = event_logger("demo")


def start_demo_instance(service: str, port: int, seed: int, log_dir: Path | None = None) -> LoopbackInstance:
    """Launch one demo process (does not wait for it)."""
    argv = [sys.executable, "-m", "engine.fleet.demo_service", "--name", service, "--port", str(port),
            "--seed", str(seed)]
    log_path = log_dir / f"demo-{service}-{port}.log" if log_dir else None
    return LoopbackInstance(service, port, spawn(argv, log_path=log_path, cwd=Path(__file__).resolve().parents[2]))


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
