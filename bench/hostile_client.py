"""GET /api/health latency while a hostile client attacks the REST API, and the same probe with nobody attacking
(the peer: the same engine, the same machine, the same run). Goal: p99 under attack below 100 ms.

`python -m bench.hostile_client [--requests 2000] [--rounds 1]` starts the engine (`python -m engine serve`, no
demo fleet) on a scratch database and probes GET /api/health `requests` times in a row, each on a new connection
(as a balancer's health check does): first alone, then while a hostile client runs in another process:

- 60 sockets that each sent half a request and idle (one reopened whenever the server closes it),
- a stream of requests carrying a 200 kB header (answered 431),
- a stream of 40 kB nested-JSON bodies to POST /api/auth/token (400),
- a stream of forged, expired and unsigned (`alg: none`) tokens on GET /api/services (401),
- 20 slow-loris bodies: a POST that declares 60,000 bytes and sends one a second.

Each attack stream sends its next request as soon as the last is answered. The engine's rate limits are raised
so the probe is never limited and every attack request reaches the server's parsing and the app's checks (harder
on the server than the default limits, which would answer most of them 429 early). Each round prints p50, p99
and max of both runs, the engine's CPU use during each, their ratio, the load average before it, and what the
attacker's requests were answered;
the exit status is 1 when a round misses the goal or a probe request failed. Every process it starts is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import select
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event
from pathlib import Path

import jwt
import psutil

from bench.common import scratch_database
from bench.outage_rig import EngineProcess, free_port, wait_until
from contract.roles import Role
from engine.clock import FakeClock
from engine.security.tokens import TokenIssuer
from engine.stats import percentile

GOAL_P99_MS = 100.0
SECRET = "hostile-client-bench-secret-0123456789abcdef"
IDLE_SOCKETS, SLOW_BODIES = 60, 20
HEADER_BYTES, NESTING = 200_000, 20_000
PROBE = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
HALF_REQUEST = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def exchange(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send request on a new connection and read the answer to its close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65_536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> str:
    """The status code of a raw answer ("none" for an empty one)."""
    parts = answer.split(b" ", 2)
    return parts[1].decode() if len(parts) > 1 else "none"


# -- the hostile client (in its own process) ---------------------------------------------------------------------


def _tokens() -> list[bytes]:
    claims = {"sub": "admin", "role": "admin", "exp": 4_102_444_800}
    forged, _ = TokenIssuer("not-the-secret-" + "x" * 32, 3600, FakeClock()).issue("admin", Role.ADMIN, 0)
    expired, _ = TokenIssuer(SECRET, 3600, FakeClock(datetime.now(UTC) - timedelta(days=2))).issue("admin",
                                                                                                  Role.ADMIN, 0)
    # signed with the engine's own secret, for a user that does not exist (a removed user's token)
    removed, _ = TokenIssuer(SECRET, 3600, FakeClock(datetime.now(UTC))).issue("removed-admin", Role.ADMIN, 0)
    unsigned = jwt.encode(claims, None, algorithm="none")
    return [f"GET /api/services HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n\r\n"
            .encode() for t in (forged, expired, removed, unsigned)]


def _stream(name: str, requests: list[bytes], port: int, stop: Event, seen: Counter[str]) -> None:
    i = 0
    while not stop.is_set():
        try:
            seen[f"{name} {status_of(exchange(port, requests[i % len(requests)]))}"] += 1
        except OSError as exc:
            seen[f"{name} {type(exc).__name__}"] += 1
        i += 1


def _idle(port: int, stop: Event, seen: Counter[str]) -> None:
    """IDLE_SOCKETS half requests held open; one the server closes is counted and replaced."""
    def opened() -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(HALF_REQUEST)
        return s

    held = [opened() for _ in range(IDLE_SOCKETS)]
    try:
        while not stop.wait(0.5):
            closed, _, _ = select.select(held, [], [], 0)
            for s in closed:
                s.close()
                held[held.index(s)] = opened()
                seen["idle closed by the server"] += 1
    finally:
        for s in held:
            s.close()


def _slow_bodies(port: int, stop: Event, seen: Counter[str]) -> None:
    """SLOW_BODIES POSTs declaring 60,000 bytes, each sent one byte a second."""
    head = (b"POST /api/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 60000\r\n\r\n")

    def opened() -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(head)
        return s

    held = [opened() for _ in range(SLOW_BODIES)]
    try:
        while not stop.wait(1.0):
            for i, s in enumerate(held):
                try:
                    s.sendall(b" ")
                except OSError:
                    s.close()
                    held[i] = opened()
                    seen["slow body closed by the server"] += 1
    finally:
        for s in held:
            s.close()


def attack(port: int, ready: Event, stop: Event, results: multiprocessing.Queue[dict[str, int]]) -> None:
    """Run every attack until stop is set; put what the server answered on results."""
    seen: Counter[str] = Counter()
    header = (b"GET /api/services HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * HEADER_BYTES
              + b"\r\nConnection: close\r\n\r\n")
    nested = b"[" * NESTING + b"]" * NESTING
    login = (b"POST /api/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(nested) + nested)
    workers: list[Callable[[], None]] = [
        lambda: _idle(port, stop, seen),
        lambda: _slow_bodies(port, stop, seen),
        lambda: _stream("200 kB header", [header], port, stop, seen),
        lambda: _stream("nested JSON", [login], port, stop, seen),
        lambda: _stream("bad token", _tokens(), port, stop, seen),
    ]
    threads = [threading.Thread(target=w, daemon=True) for w in workers]
    for t in threads:
        t.start()
    ready.set()
    for t in threads:
        t.join()
    results.put(dict(seen))


# -- the probe ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One probe run: its latencies in ms, ascending, the requests not answered 200, and the engine's CPU use
    meanwhile (cores)."""

    latencies_ms: list[float]
    failures: Counter[str]
    engine_cores: float = 0.0

    def line(self, label: str) -> str:
        """p50, p99 and max as one line."""
        ms = self.latencies_ms
        failed = sum(self.failures.values())
        return (f"{label:<13} p50 {percentile(ms, 50):7.2f} ms  p99 {percentile(ms, 99):7.2f} ms  "
                f"max {ms[-1]:8.2f} ms  engine CPU {self.engine_cores:.2f} cores  "
                f"failed {failed}{f' {dict(self.failures)}' if failed else ''}")


def probe(port: int, count: int, engine: psutil.Process | None = None) -> Run:
    """count GETs of /api/health in a row, each on a new connection; a failure counts as its time to fail."""
    latencies, failures = [], Counter[str]()
    cpu_before, began = _cpu(engine), time.perf_counter()
    for _ in range(count):
        started = time.perf_counter()
        try:
            status = status_of(exchange(port, PROBE))
        except OSError as exc:
            status = type(exc).__name__
        latencies.append((time.perf_counter() - started) * 1000)
        if status != "200":
            failures[status] += 1
    return Run(sorted(latencies), failures, (_cpu(engine) - cpu_before) / (time.perf_counter() - began))


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


def ready(port: int) -> bool:
    """The API answers /api/health 200."""
    try:
        return status_of(exchange(port, PROBE)) == "200"
    except OSError:
        return False


def under_attack(port: int, count: int, engine: psutil.Process) -> tuple[Run, dict[str, int], float]:
    """The probe while the hostile client runs; what the attacker saw, and for how long it ran."""
    ctx = multiprocessing.get_context("spawn")
    ready, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    attacker = ctx.Process(target=attack, args=(port, ready, stop, results), name="hostile-client")
    attacker.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the hostile client did not start")
        time.sleep(1.0)  # every stream in full swing
        started = time.monotonic()
        run = probe(port, count, engine)
        stop.set()
        seen = results.get(timeout=30)
        return run, seen, time.monotonic() - started
    finally:
        stop.set()
        attacker.join(15)
        if attacker.is_alive():
            attacker.kill()
            attacker.join(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="probe requests per run")
    parser.add_argument("--rounds", type=int, default=1, help="quiet/attack pairs to run")
    args = parser.parse_args()
    ok = True
    with scratch_database() as url, tempfile.TemporaryDirectory(prefix="mm-hostile-") as work:
        port = free_port()
        env = {"DATABASE_URL": url, "DATA_DIR": str(Path(work) / "data"), "API_PORT": str(port), "PROXY_PORT": "0",
               "JWT_SECRET": SECRET, "ADMIN_PASSWORD": "hostile-client-admin-password", "LOG_LEVEL": "WARNING",
               "RATE_LIMIT_PER_S": "1000000", "RATE_LIMIT_BURST": "1000000"}
        engine = EngineProcess(env, Path(work) / "engine.log", demo=False)
        try:
            if not wait_until(lambda: ready(port), 60):
                print(engine.console()[-3000:], file=sys.stderr)
                return 1
            probe(port, 200)  # warm up
            process = psutil.Process(engine.proc.pid)
            print(f"GET /api/health on a new connection, {args.requests} requests a run, {os.cpu_count()} cores")
            for n in range(1, args.rounds + 1):
                load = " ".join(f"{v:.2f}" for v in os.getloadavg())
                print(f"round {n} (load average before: {load})")
                quiet = probe(port, args.requests, process)
                attacked, seen, lasted = under_attack(port, args.requests, process)
                print("  " + quiet.line("quiet (peer)"))
                print("  " + attacked.line("under attack"))
                p99_quiet, p99_attacked = percentile(quiet.latencies_ms, 99), percentile(attacked.latencies_ms, 99)
                met = p99_attacked < GOAL_P99_MS and not attacked.failures and not quiet.failures
                print(f"  p99 ratio under attack / quiet: {p99_attacked / p99_quiet:.2f}x; goal p99 < "
                      f"{GOAL_P99_MS:.0f} ms: {'ok' if met else 'MISSED'}")
                print(f"  the attacker in {lasted:.1f} s: "
                      + ", ".join(f"{k} x{v} ({v / lasted:.0f}/s)" for k, v in sorted(seen.items())))
                ok = ok and met
        finally:
            with contextlib.suppress(Exception):
                engine.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
