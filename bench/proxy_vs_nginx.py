"""The traffic listener (PROXY_PORT) vs nginx `proxy_pass`: the same upstreams, the same client, the same core.

Upstreams: nginx, one worker pinned to UPSTREAM_CPU, two servers answering 200 "ok" from memory with keep-alive
(never the limit), and for the slow case a small uvloop server (this module, `--slow-upstream`) answering after
200 ms. Proxies, one at a time, pinned to PROXY_CPU: our engine (a child running Runtime with the API and the
listener; the whole process pinned, so its API threads and jobs share the core) routing `/proxy/up/` round-robin
over the two servers with an operator token, and nginx (one worker) with `proxy_pass` to an upstream block of the
same two servers (HTTP/1.1, keep-alive). The client is wrk (1 thread, CONNECTIONS connections) pinned to
UPSTREAM_CPU.

Figures (each the median of REPEATS runs of RUN_S seconds):
- req/s and p50 through each proxy at CONNECTIONS connections, and their ratio (goal >= 0.30x nginx); the API
  port's `/proxy` route (waitress threads) is measured too, for reference;
- added p50: p50 through the proxy less p50 straight to the upstream, at 1 connection (no queueing; goal <= 1 ms);
- our req/s with a 200 ms upstream at 64 connections (goal >= 280; 320 is the ceiling);
- `/api/health` p99 on the API port, one probe at a time, while wrk saturates the listener (goal < 50 ms).

The proxy rate limit is lifted for the run (PROXY_RATE_LIMIT_PER_S): the figure is the listener's, not the bucket's.
Other work on the machine moves these figures: each run records the CPU other processes used meanwhile (in cores)
and the load average, and the end says how many runs were disturbed (> NOISE_CORES). `--profile` runs the engine
child under cProfile (its loop thread) during one saturated run and prints the top functions by own time.
`--cpu` measures only the engine's CPU per proxied request (its CPU seconds over wrk's requests, split by thread):
a figure other work on the machine moves much less than req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

import bench.common  # noqa: F401 - puts the project on sys.path
from bench.common import scratch_database
from contract.errors import ProcessError
from engine.fleet.processes import spawn, stop_all

ROOT = Path(__file__).resolve().parents[1]
NGINX = "/usr/sbin/nginx"
WRK = "wrk"
PROXY_CPU, UPSTREAM_CPU = "0", "1"
CONNECTIONS, SLOW_CONNECTIONS = 16, 64
RUN_S, REPEATS = 8, 3
SLOW_MS = 200
NOISE_CORES = 0.15
PASSWORD = "bench-admin-password"

UPSTREAM_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/up.pid;
error_log {tmp}/up-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {tmp}/up-body;
    proxy_temp_path {tmp}/up-proxy;
    fastcgi_temp_path {tmp}/up-fastcgi;
    uwsgi_temp_path {tmp}/up-uwsgi;
    scgi_temp_path {tmp}/up-scgi;
    server {{ listen 127.0.0.1:{a}; location / {{ default_type text/plain; return 200 "ok\\n"; }} }}
    server {{ listen 127.0.0.1:{b}; location / {{ default_type text/plain; return 200 "ok\\n"; }} }}
}}
"""

PROXY_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/px.pid;
error_log {tmp}/px-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {tmp}/px-body;
    proxy_temp_path {tmp}/px-proxy;
    fastcgi_temp_path {tmp}/px-fastcgi;
    uwsgi_temp_path {tmp}/px-uwsgi;
    scgi_temp_path {tmp}/px-scgi;
    upstream up {{ server 127.0.0.1:{a}; server 127.0.0.1:{b}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location /proxy/up/ {{
            proxy_pass http://up/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
        }}
    }}
}}
"""


def os_port() -> int:
    """A loopback port the OS has just handed out (free now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0,
              headers: dict[str, str] | None = None) -> None:
    """Until url answers 200 (ProcessError if the process exits or the time runs out)."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(trust_env=False, timeout=2) as client:
        while True:
            if process.poll() is not None:
                raise ProcessError(f"{process.args!r} exited with code {process.returncode}")
            try:
                if client.get(url, headers=headers).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ProcessError(f"{url} not answering after {timeout_s:g} s")
            time.sleep(0.1)


@contextmanager
def nginx(workdir: Path, conf: str, cpu: str, url: str) -> Iterator[subprocess.Popen[bytes]]:
    """nginx with this configuration, pinned to cpu, answering url; stopped afterwards."""
    name = f"nginx-{os_port()}.conf"
    (workdir / name).write_text(conf)
    proc = spawn(["taskset", "-c", cpu, NGINX, "-p", str(workdir), "-c", str(workdir / name),
                  "-e", str(workdir / "error.log")], log_path=workdir / "nginx.out")
    try:
        wait_http(url, proc)
        yield proc
    finally:
        stop_all([proc])


@contextmanager
def slow_upstream(workdir: Path) -> Iterator[str]:
    """This module's 200 ms server on UPSTREAM_CPU; its base URL."""
    port = os_port()
    proc = spawn(["taskset", "-c", UPSTREAM_CPU, sys.executable, "-m", "bench.proxy_vs_nginx", "--slow-upstream",
                  str(port)], cwd=ROOT, log_path=workdir / "slow.out")
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_all([proc])


@dataclass(frozen=True)
class Engine:
    """Our engine child: its API and listener URLs, an operator token, its process."""

    api: str
    proxy: str
    token: str
    process: subprocess.Popen[bytes]
    service: str

    @property
    def route(self) -> str:
        """The listener's URL of the service's `/ok`."""
        return f"{self.proxy}/proxy/{self.service}/ok"

    @property
    def auth(self) -> dict[str, str]:
        """The operator's Authorization header."""
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def engine(workdir: Path, database_url: str, upstreams: list[str], service: str,
           profile: bool = False) -> Iterator[Engine]:
    """Our engine pinned to PROXY_CPU, with the service on upstreams, every instance healthy."""
    api_port, proxy_port = os_port(), os_port()
    env = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(workdir / "data"), "API_PORT": str(api_port),
           "PROXY_PORT": str(proxy_port), "ADMIN_PASSWORD": PASSWORD, "PROXY_RATE_LIMIT_PER_S": "1e9",
           "PROXY_RATE_LIMIT_BURST": "1000000000", "RATE_LIMIT_PER_S": "1000", "RATE_LIMIT_BURST": "100000"}
    argv = ["taskset", "-c", PROXY_CPU, sys.executable, "-m", "bench.proxy_vs_nginx", "--engine-child"]
    proc = spawn([*argv, "--profile"] if profile else argv, env=env, cwd=ROOT, log_path=workdir / "engine.out")
    api = f"http://127.0.0.1:{api_port}"
    try:
        wait_http(api + "/api/health", proc, 60)
        with httpx.Client(base_url=api, trust_env=False, timeout=10) as client:
            r = client.post("/api/auth/token", json={"username": "admin", "password": PASSWORD})
            r.raise_for_status()
            token = r.json()["token"]
            client.headers["Authorization"] = f"Bearer {token}"
            r = client.post("/api/services", json={"name": service, "instances": upstreams})
            r.raise_for_status()
        found = Engine(api, f"http://127.0.0.1:{proxy_port}", token, proc, service)
        wait_http(f"{found.proxy}/proxy/{service}/health", proc, 30, found.auth)
        yield found
    finally:
        stop_all([proc], timeout=15)


class Watch:
    """CPU other processes took during a run, in cores: the machine's busy CPU less this process's and its
    children's (live ones and those already waited for)."""

    def __init__(self) -> None:
        self.cores = 0.0
        self.load = 0.0

    @staticmethod
    def _own() -> float:
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        for child in psutil.Process().children(recursive=True):
            with suppress(psutil.Error):
                total += sum(child.cpu_times()[:2])
        return total

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return float(t.user + t.nice + t.system + t.irq + t.softirq)

    def __enter__(self) -> Watch:
        self._start = (time.monotonic(), self._busy(), self._own())
        return self

    def __exit__(self, *exc: object) -> None:
        t0, busy0, own0 = self._start
        busy1, own1 = self._busy(), self._own()
        self.cores = max(0.0, (busy1 - busy0) - (own1 - own0)) / max(time.monotonic() - t0, 1e-9)
        self.load = os.getloadavg()[0]


@dataclass(frozen=True)
class Run:
    """One wrk run: req/s, p50 and p99 in ms, errors, and what else the machine did meanwhile."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    other_cores: float
    load: float


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, connections: int, headers: dict[str, str] | None = None,
        seconds: float | None = None) -> Run:
    """wrk -t1 pinned to UPSTREAM_CPU against url (for RUN_S seconds unless told)."""
    seconds = RUN_S if seconds is None else seconds
    argv = ["taskset", "-c", UPSTREAM_CPU, WRK, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    for key, value in (headers or {}).items():
        argv += ["-H", f"{key}: {value}"]
    with Watch() as watch:
        out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {m[0]: float(m[1]) * _UNITS[m[2]] for m in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out,
                                                                  re.MULTILINE)}
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Run(rps, pct["50"], pct["99"], errors, watch.cores, watch.load)


def best_of(runs: list[Run]) -> Run:
    """The median of each figure over the runs."""
    return Run(statistics.median(r.rps for r in runs), statistics.median(r.p50_ms for r in runs),
               statistics.median(r.p99_ms for r in runs), sum(r.errors for r in runs),
               max(r.other_cores for r in runs), max(r.load for r in runs))


def health_p99_under_load(eng: Engine) -> tuple[float, float, Run]:
    """/api/health p50 and p99 (ms), one probe at a time, while wrk saturates the listener."""
    import threading

    result: list[Run] = []
    runner = threading.Thread(target=lambda: result.append(
        wrk(eng.route, CONNECTIONS, eng.auth, RUN_S + 2)))
    runner.start()
    time.sleep(1.0)
    samples = []
    with httpx.Client(trust_env=False, timeout=10) as client:
        deadline = time.monotonic() + RUN_S
        while time.monotonic() < deadline:
            began = time.perf_counter()
            assert client.get(eng.api + "/api/health").status_code == 200
            samples.append((time.perf_counter() - began) * 1e3)
            time.sleep(0.02)
    runner.join()
    samples.sort()
    return samples[len(samples) // 2], samples[min(len(samples) - 1, int(len(samples) * 0.99))], result[0]


def describe(name: str, run: Run) -> str:
    """One line of a result."""
    return (f"{name:<34} {run.rps:>9,.0f} req/s  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:7.2f} ms"
            f"  errors {run.errors}  (other work {run.other_cores:.2f} cores, load {run.load:.1f})")


def main(args: argparse.Namespace) -> int:
    print(f"proxy on CPU {PROXY_CPU}; upstreams and wrk on CPU {UPSTREAM_CPU}; {REPEATS} runs of {RUN_S} s each; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    a, b, px = os_port(), os_port(), os_port()
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp, scratch_database() as database_url:
        work = Path(tmp)
        upstreams = [f"http://127.0.0.1:{a}", f"http://127.0.0.1:{b}"]
        runs: dict[str, list[Run]] = {"direct": [], "direct1": [], "nginx": [], "nginx1": [], "ours": [], "ours1": [],
                                     "api": []}
        nginx_route = f"http://127.0.0.1:{px}/proxy/up/ok"
        with nginx(work, UPSTREAM_CONF.format(tmp=tmp, a=a, b=b), UPSTREAM_CPU, upstreams[0] + "/ok"):
            with nginx(work, PROXY_CONF.format(tmp=tmp, a=a, b=b, port=px), PROXY_CPU,
                       nginx_route), engine(work, database_url, upstreams, "up") as eng:
                wrk(eng.route, CONNECTIONS, eng.auth, 2)  # warm: pools, caches
                wrk(nginx_route, CONNECTIONS, None, 2)
                for _ in range(REPEATS):
                    runs["direct"].append(wrk(upstreams[0] + "/ok", CONNECTIONS))
                    runs["nginx"].append(wrk(nginx_route, CONNECTIONS))
                    runs["ours"].append(wrk(eng.route, CONNECTIONS, eng.auth))
                    runs["api"].append(wrk(f"{eng.api}/proxy/{eng.service}/ok", CONNECTIONS, eng.auth))
                    runs["direct1"].append(wrk(upstreams[0] + "/ok", 1))
                    runs["nginx1"].append(wrk(nginx_route, 1))
                    runs["ours1"].append(wrk(eng.route, 1, eng.auth))
                health = health_p99_under_load(eng)
            with slow_upstream(work) as slow, engine(work, database_url, [slow], "slow") as eng:
                slow_runs = [wrk(eng.route, SLOW_CONNECTIONS, eng.auth)
                             for _ in range(REPEATS)]
            if args.profile:
                profile(work, database_url, upstreams)
    fig = {k: best_of(v) for k, v in runs.items()}
    slow_fig = best_of(slow_runs)
    for key, label in (("direct", "direct to the upstream"), ("nginx", "nginx proxy_pass"),
                       ("ours", "ours (traffic listener)"), ("api", "ours (the API port's /proxy)")):
        print(describe(f"{label}, {CONNECTIONS} conns", fig[key]))
    for key, label in (("direct1", "direct to the upstream"), ("nginx1", "nginx proxy_pass"),
                       ("ours1", "ours (traffic listener)")):
        print(describe(f"{label}, 1 conn", fig[key]))
    print(describe(f"ours, {SLOW_MS} ms upstream, {SLOW_CONNECTIONS} conns", slow_fig))
    h50, h99, under = health
    print(f"/api/health while the listener is saturated: p50 {h50:.1f} ms, p99 {h99:.1f} ms "
          f"(listener meanwhile {under.rps:,.0f} req/s)")
    ratio = fig["ours"].rps / fig["nginx"].rps
    added = fig["ours1"].p50_ms - fig["direct1"].p50_ms
    added_nginx = fig["nginx1"].p50_ms - fig["direct1"].p50_ms
    disturbed = sum(r.other_cores > NOISE_CORES for v in runs.values() for r in v)
    verdicts = [
        ("req/s vs nginx", f"{ratio:.2f}x", ratio >= 0.30, ">= 0.30x"),
        ("added p50 at 1 conn", f"{added:.3f} ms (nginx {added_nginx:.3f} ms)", added <= 1.0, "<= 1 ms"),
        (f"{SLOW_MS} ms upstream, {SLOW_CONNECTIONS} conns", f"{slow_fig.rps:.0f} req/s", slow_fig.rps >= 280,
         ">= 280"),
        ("/api/health p99 under load", f"{h99:.1f} ms", h99 < 50, "< 50 ms"),
    ]
    for name, value, ok, goal in verdicts:
        print(f"{name}: {value} (goal {goal}: {'ok' if ok else 'NOT MET'})")
    if disturbed:
        print(f"note: {disturbed} of {sum(len(v) for v in runs.values())} runs had other work on the machine "
              f"(> {NOISE_CORES:g} cores): these figures are partly the machine's; rerun when it is quiet")
    return 0 if all(ok for _, _, ok, _ in verdicts) else 1


def cpu_per_request(args: argparse.Namespace) -> int:
    """The engine's CPU microseconds per proxied request at saturation, its loop's and its other threads', and
    /api/health p99 while saturated; REPEATS runs, each line printed."""
    print(f"engine on CPU {PROXY_CPU}; upstreams and wrk on CPU {UPSTREAM_CPU}; {REPEATS} runs of {RUN_S} s; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    a, b = os_port(), os_port()
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp, scratch_database() as database_url:
        work = Path(tmp)
        upstreams = [f"http://127.0.0.1:{a}", f"http://127.0.0.1:{b}"]
        with nginx(work, UPSTREAM_CONF.format(tmp=tmp, a=a, b=b), UPSTREAM_CPU, upstreams[0] + "/ok"), \
                engine(work, database_url, upstreams, "up") as eng:
            wrk(eng.route, CONNECTIONS, eng.auth, 2)  # warm: pools, caches
            child = psutil.Process(eng.process.pid)  # taskset execs the engine: same pid
            per: list[float] = []
            for _ in range(REPEATS):
                before = {t.id: t.user_time + t.system_time for t in child.threads()}
                user0, system0 = child.cpu_times()[:2]
                run, requests = wrk_counted(eng.route, CONNECTIONS, eng.auth)
                user1, system1 = child.cpu_times()[:2]
                total, system = user1 + system1 - user0 - system0, system1 - system0
                after = {t.id: t.user_time + t.system_time - before.get(t.id, 0.0) for t in child.threads()}
                busiest = max(after.values())
                us = total / requests * 1e6
                per.append(us)
                print(f"{requests:>8} requests  {run.rps:>7,.0f} req/s  engine CPU {total:5.2f} s"
                      f" = {us:6.1f} us/request (kernel {system / requests * 1e6:5.1f} us;"
                      f" busiest thread {busiest / requests * 1e6:6.1f} us, the rest"
                      f" {(total - busiest) / requests * 1e6:5.1f} us)  other work {run.other_cores:.2f} cores,"
                      f" load {run.load:.1f}", flush=True)
            h50, h99, under = health_p99_under_load(eng)
    print(f"median engine CPU per request: {statistics.median(per):.1f} us")
    print(f"/api/health while saturated: p50 {h50:.1f} ms, p99 {h99:.1f} ms (listener {under.rps:,.0f} req/s)")
    return 0


def wrk_counted(url: str, connections: int, headers: dict[str, str] | None = None) -> tuple[Run, int]:
    """wrk as wrk() does, and how many requests it completed."""
    argv = ["taskset", "-c", UPSTREAM_CPU, WRK, "-t1", f"-c{connections}", f"-d{RUN_S:g}s"]
    for key, value in (headers or {}).items():
        argv += ["-H", f"{key}: {value}"]
    with Watch() as watch:
        out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=RUN_S + 30, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Run(rps, 0.0, 0.0, 0, watch.cores, watch.load), requests


def profile(work: Path, database_url: str, upstreams: list[str]) -> None:
    """One saturated run against an engine child under cProfile; its table goes to the child's log, shown here."""
    with engine(work, database_url, upstreams, "profiled", profile=True) as eng:
        print(describe("ours under cProfile", wrk(eng.route, CONNECTIONS, eng.auth)))
    print((work / "engine.out").read_text()[-6000:])


# -- the child processes ----------------------------------------------------------------------------------


def engine_child(profiled: bool) -> int:
    """The engine: Runtime with the API and the listener until SIGTERM (with profiled, cProfile on its loop)."""
    import cProfile
    import pstats
    import threading

    from contract.settings import Settings
    from engine.api import create_app
    from engine.runtime import Runtime

    rt = Runtime.open(Settings.from_env())
    rt.start(app=create_app(rt))
    if os.environ.get("BENCH_SWITCH_INTERVAL_S"):  # --switch-interval: the engine's GIL_SWITCH_INTERVAL_S replaced
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL_S"]))
    profiler = cProfile.Profile() if profiled else None
    if profiler is not None:
        rt.loop.run_soon(_call(profiler.enable)).result(5)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    if profiler is not None:
        rt.loop.run_soon(_call(profiler.disable)).result(5)
        top = int(os.environ.get("PROFILE_TOP", "25"))  # rows of the table
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(top)
        sys.stdout.flush()
    rt.stop()
    return 0


async def _call(fn: object) -> None:
    fn()  # type: ignore[operator]


def slow_child(port: int) -> int:
    """An HTTP/1.1 keep-alive server answering every request 200 "ok" after SLOW_MS."""
    import uvloop

    async def serve() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    if not head.startswith(b"GET /health"):
                        await asyncio.sleep(SLOW_MS / 1000)
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n")
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    uvloop.run(serve())
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="also profile the engine during one saturated run")
    parser.add_argument("--cpu", action="store_true", help="only the engine's CPU per proxied request")
    parser.add_argument("--switch-interval", type=float, metavar="S",
                        help="the engine's GIL switch interval instead of its own (e.g. 0.005, Python's default)")
    parser.add_argument("--seconds", type=float, default=RUN_S, help="seconds of each wrk run")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs of each figure (the median counts)")
    parser.add_argument("--engine-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--slow-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    cli = parser.parse_args()
    RUN_S, REPEATS = cli.seconds, cli.repeats
    if cli.switch_interval:
        os.environ["BENCH_SWITCH_INTERVAL_S"] = str(cli.switch_interval)
    if cli.engine_child:
        sys.exit(engine_child(cli.profile))
    if cli.slow_upstream:
        sys.exit(slow_child(cli.slow_upstream))
    sys.exit(cpu_per_request(cli) if cli.cpu else main(cli))
