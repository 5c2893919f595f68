"""Schemathesis over every operation of a running engine: a fresh database, rate limits raised, an admin's token.

`python -m bench.schemathesis_run [--examples 100] [--seed N] [-- extra schemathesis options]` creates a database on
DATABASE_URL's server (else an embedded PostgreSQL), starts `python -m engine serve` on it with the rate and login
limits raised, takes an admin token and runs the `schemathesis` command line against /api/openapi.json: every phase
(examples, coverage, fuzzing, stateful), positive and negative data, every check: first every operation but those
that end the caller's own tokens (own password, logout, changing or removing a user), then each of those in a pass
of its own with a fresh token. It prints the failures per check and exits 1 when there is any. The engine and every
process it started are stopped and the database dropped.

The engine runs in a scratch directory with an empty PATH: the fuzzer's launch commands (managed services) name
programs that then cannot be found, and INSTANCE_ALLOWLIST keeps every instance URL on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import scratch_database

ROOT = Path(__file__).resolve().parents[1]
CONFIG = Path(__file__).with_name("schemathesis.toml")  # what the checks expect of this API, with the reasons
ADMIN = "admin"
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
# operations that end the caller's tokens run after the others, one pass each with a fresh token, in this order:
# changing one's own password (the fuzzer does not know it: refused), logging out, changing or removing a user (the
# fuzzer's admin among them: no login may follow)
REVOKING = (r"^/api/auth/password$", r"^/api/auth/logout$", r"^/api/users/\{user_id\}$")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def engine_env(database_url: str, data_dir: Path, empty_bin: Path, password: str) -> dict[str, str]:
    """The engine's environment: its database, loopback ports, secrets of this run, limits raised or bounded."""
    return {
        "HOME": str(data_dir), "LANG": os.environ.get("LANG", "C.UTF-8"), "PATH": str(empty_bin),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url, "DATA_DIR": str(data_dir),
        "API_HOST": "127.0.0.1", "API_PORT": str(_free_port()), "PROXY_PORT": "0", "DEMO_PORT_BASE": "20000",
        "JWT_SECRET": secrets.token_urlsafe(48), "ADMIN_PASSWORD": password,
        "RATE_LIMIT_PER_S": "100000", "RATE_LIMIT_BURST": "1000000",
        "LOGIN_ATTEMPTS": "1000000", "LOGIN_REFILL_S": "0.001",
        "INSTANCE_ALLOWLIST": "127.0.0.0/8",
        # what the fuzzer starts ends soon: load tests and simulations are short and small
        "MAX_DURATION": "5", "MAX_RPS": "200", "MAX_USERS": "20", "SIMULATION_MAX_MS": "5000",
        "MEMORY_LEAK_CAP_MB": "32", "SCALE_READY_TIMEOUT_S": "2", "LOG_LEVEL": "WARNING",
    }


def wait_ready(base: str, engine: subprocess.Popen[bytes]) -> None:
    """Until /api/health answers; raises when the engine exits or the deadline passes."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if engine.poll() is not None:
            raise RuntimeError(f"the engine exited with {engine.returncode} before serving")
        try:
            if httpx.get(f"{base}/api/health", timeout=1.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the engine did not answer {base}/api/health within {READY_TIMEOUT_S:.0f} s")


def stop(engine: subprocess.Popen[bytes]) -> None:
    """SIGINT (the engine stops what it started), then SIGKILL to whatever of its tree is left."""
    try:
        tree = [psutil.Process(engine.pid), *psutil.Process(engine.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    if engine.poll() is None:
        engine.send_signal(signal.SIGINT)
        try:
            engine.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(f"the engine did not stop within {STOP_TIMEOUT_S:.0f} s: killed", file=sys.stderr)
    left = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in left:
        print(f"left running: pid {p.pid} {p.cmdline()}: killed", file=sys.stderr)
        p.kill()
    psutil.wait_procs(left, timeout=5)
    engine.wait()


def read_events(events: Path) -> tuple[Counter[str], Counter[str]]:
    """From schemathesis' NDJSON events: how many times each check ran, and its distinct failures (operation,
    check, message)."""
    ran: Counter[str] = Counter()
    failed: set[tuple[str, str, str]] = set()
    for line in events.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if not finished:
            continue
        for case_checks in finished.get("recorder", {}).get("checks", {}).values():
            for check in case_checks:
                ran[check["name"]] += 1
                if check.get("status") == "failure":
                    failure = check.get("failure_info", {}).get("failure", {})
                    failed.add((failure.get("operation", ""), check["name"], failure.get("message", "")))
    return ran, Counter(name for _, name, _ in failed)


def main(argv: list[str] | None = None) -> int:
    """Run it all; 0 when schemathesis found nothing."""
    parser = argparse.ArgumentParser(prog="python -m bench.schemathesis_run", description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="test cases per operation and phase")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run's data (printed at its start)")
    parser.add_argument("--events", type=Path, default=None,
                        help="keep schemathesis' NDJSON events (NAME-0 to NAME-3: one file a pass)")
    parser.add_argument("extra", nargs="*", help="more `schemathesis run` options, after --")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    print(f"seed {seed}: --seed {seed} repeats this run's data", flush=True)
    with tempfile.TemporaryDirectory(prefix="mm-fuzz-") as tmp, scratch_database() as database_url:
        data_dir, empty_bin = Path(tmp, "data"), Path(tmp, "bin")
        events = args.events or Path(tmp, "events.ndjson")
        for d in (data_dir, empty_bin):
            d.mkdir()
        password = secrets.token_urlsafe(16)
        env = engine_env(database_url, data_dir, empty_bin, password)
        base = f"http://127.0.0.1:{env['API_PORT']}"
        with open(Path(tmp, "engine.log"), "wb") as log:
            engine = subprocess.Popen([sys.executable, "-m", "engine", "serve"], env=env, cwd=data_dir,
                                      stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(base, engine)
            ran, counts, failed_passes = Counter[str](), Counter[str](), 0
            # the operations that end the caller's own tokens run last, in a pass of their own: before them, every
            # operation is called with a token that stays valid
            passes = [["--exclude-path-regex", "|".join(REVOKING)]] + [["--include-path-regex", r] for r in REVOKING]
            for n, selection in enumerate(passes):
                token = httpx.post(f"{base}/api/auth/token", json={"username": ADMIN, "password": password},
                                   timeout=10).raise_for_status().json()["token"]
                pass_events = events.with_name(f"{events.stem}-{n}{events.suffix}")
                command = [
                    str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(CONFIG),
                    "run", f"{base}/api/openapi.json", *selection,
                    "--mode", "all", "--phases", "examples,coverage,fuzzing,stateful",
                    "--max-examples", str(args.examples), "--seed", str(seed), "--workers", "1",
                    "--header", f"Authorization: Bearer {token}", "--continue-on-failure",
                    "--request-timeout", "30", "--suppress-health-check", "all", "--no-color",
                    "--report", "ndjson", "--report-ndjson-path", str(pass_events.resolve()),
                    *args.extra,
                ]
                began = time.monotonic()
                result = subprocess.run(command, cwd=tmp, check=False)
                print(f"schemathesis pass {n + 1} exited {result.returncode} after {time.monotonic() - began:.0f} s",
                      flush=True)
                pass_ran, pass_counts = read_events(pass_events)
                ran.update(pass_ran)
                counts.update(pass_counts)
                failed_passes += result.returncode != 0
        finally:
            stop(engine)
            errors = [line for line in Path(tmp, "engine.log").read_text(errors="replace").splitlines()
                      if "Traceback" in line or " ERROR " in line]
        print(f"engine log: {len(errors)} error line(s)" + "".join(f"\n  {e}" for e in errors[:20]))
    total = sum(counts.values())
    print("check: responses checked, distinct failures")
    for name in sorted(ran):
        print(f"  {name}: {ran[name]}, {counts[name]}")
    print(f"failures: {total}")
    return 1 if total or failed_passes else 0


if __name__ == "__main__":
    sys.exit(main())
