"""Health checks at fleet scale: 10,000 instances every 5 s on one core, beside Prometheus + blackbox_exporter.

Target: one nginx worker pinned to CPU 1 listening on 0.0.0.0 on two ports (ours, the peer's), answering
`/health` 200 from memory with keep-alive; each of the 10,000 instances is a distinct loopback address
127.1.x.y (Linux routes all of 127/8 to lo), so every instance is its own host to both clients. nginx logs
`$msec $server_addr $server_port` of every request: the per-instance record both sides are judged on.

Ours: `python -m engine serve` pinned to CPU 0, on a scratch database into which the 10,000 instances (200
services of 50) are inserted through the project's db layer (the ORM models, one transaction: registering them
through the API is not what is measured here), HEALTH_INTERVAL=5. After a warm-up (connections made, phases in
step) a window of MEASURE_S: CPU per check = the engine process's CPU seconds (psutil, user + system, all its
threads: the loop, the batch writer, the API) / checks nginx logged on our port in the window; each instance's
count in the window; p99 over all instances of |interval between its consecutive checks - 5 s|; and the engine's
own counters (mm_health_checks_started / late / skipped, mm_health_intervals_overrun) from its /metrics.

Peer, in the same run, after ours is stopped: Prometheus (pinned to CPU 1 with nginx) scraping
prometheus-blackbox-exporter (pinned to CPU 0) with an http_2xx module for the same 10,000 targets on the peer's
port every 5 s, and then again for the first PEER_KEPT of them (a fleet it keeps up with: at 10,000 it may fall
behind, and a probe cut off by the scrape timeout costs less than one done). CPU per probe = blackbox_exporter's CPU
seconds / probes nginx logged on the peer's port in the window (Prometheus' own CPU is printed, not counted). The
lower of the two is compared. The goal: ours <= 0.5x the peer's.

Other work on the machine moves these figures: the run waits up to SETTLE_S for a quiet moment (load average
under QUIET_LOAD), and prints the load average and the CPU others used during each window.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

import bench.common  # noqa: F401 - puts the project on sys.path
from bench.common import scratch_database

ROOT = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
BLACKBOX = shutil.which("prometheus-blackbox-exporter") or "/usr/bin/prometheus-blackbox-exporter"
ENGINE_CPU, TARGET_CPU = "0", "1"
INSTANCES, PER_SERVICE = 10_000, 50
PEER_KEPT = 1_000  # the peer again at a fleet it keeps up with on its core: its CPU per probe when not overloaded
INTERVAL_S = 5.0
WARMUP_S, MEASURE_S = 20.0, 60.0
GOAL_DEVIATION_S, GOAL_RATIO = 0.25, 0.5
SETTLE_S, QUIET_LOAD = 60.0, 0.5

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
worker_rlimit_nofile 60000;
events {{ worker_connections 30000; }}
http {{
    log_format probe '$msec $server_addr $server_port';
    access_log {tmp}/access.log probe buffer=256k flush=1s;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 0.0.0.0:{ours};
        listen 0.0.0.0:{peer};
        location / {{ default_type text/plain; return 200 "ok\\n"; }}
    }}
}}
"""

BLACKBOX_CONF = """\
modules:
  http_2xx:
    prober: http
    timeout: 2s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""

PROMETHEUS_CONF = """\
global:
  scrape_interval: 5s
  scrape_timeout: 2s
scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    params:
      module: [http_2xx]
    file_sd_configs:
      - files: [{targets}]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:{blackbox}
"""


def address(k: int) -> str:
    """The k-th instance's loopback address: 127.1.0.1, ..., 127.1.39.250 for 10,000."""
    return f"127.1.{k // 250}.{k % 250 + 1}"


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Until url answers below 500; RuntimeError when the process exits or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0, trust_env=False).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not answering after {timeout_s:g} s")


def start(argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
          ) -> subprocess.Popen[bytes]:
    """A child in its own session, its output in log."""
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=cwd, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the child's process group, wait, then SIGKILL it if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        except ProcessLookupError:
            pass


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children."""
    try:
        p = psutil.Process(pid)
        return sum(sum(q.cpu_times()[:2]) for q in (p, *p.children(recursive=True)))
    except psutil.Error:
        return 0.0


def wait_quiet() -> float:
    """Wait (at most SETTLE_S) for the 1-minute load average to fall under QUIET_LOAD; the load average then."""
    deadline = time.monotonic() + SETTLE_S
    while os.getloadavg()[0] > QUIET_LOAD and time.monotonic() < deadline:
        time.sleep(2.0)
    return os.getloadavg()[0]


class Others:
    """CPU (in cores) the machine spent on anything but the given processes over a window."""

    def __init__(self, pids: list[int]) -> None:
        self._pids = pids
        self._t0, self._busy0, self._own0 = self._snap()
        self.load = os.getloadavg()[0]

    def _snap(self) -> tuple[float, float, float]:
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
        return time.monotonic(), busy, sum(cpu_s(p) for p in [os.getpid(), *self._pids])

    def cores(self) -> float:
        """Cores others used since construction."""
        t1, busy1, own1 = self._snap()
        return max(0.0, (busy1 - self._busy0) - (own1 - self._own0)) / max(t1 - self._t0, 1e-9)


@dataclass(frozen=True)
class Window:
    """What nginx logged for one port over one window."""

    requests: int
    instances_seen: int
    min_per_instance: int
    checked_every_round: int  # instances whose requests were never more than 1.5 intervals apart, none missing
    p99_deviation_s: float
    max_deviation_s: float


def read_window(log: Path, port: int, t0: float, t1: float, interval: float) -> Window:
    """Per-address request times on port within [t0, t1) (wall-clock seconds) from nginx's access log."""
    times: dict[str, list[float]] = defaultdict(list)
    wanted = str(port)
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == wanted:
                at = float(parts[0])
                if t0 <= at < t1:
                    times[parts[1]].append(at)
    deviations: list[float] = []
    counts = []
    kept = 0
    for stamps in times.values():
        stamps.sort()
        counts.append(len(stamps))
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        deviations.extend(abs(g - interval) for g in gaps)
        # every round: no gap of a missed check inside the window, nor at its edges
        edges = (stamps[0] - t0, t1 - stamps[-1])
        if max(gaps, default=interval) < 1.5 * interval and max(edges) < 1.5 * interval:
            kept += 1
    deviations.sort()
    p99 = deviations[min(len(deviations) - 1, int(len(deviations) * 0.99))] if deviations else math.nan
    return Window(sum(counts), len(times), min(counts, default=0), kept, p99,
                  deviations[-1] if deviations else math.nan)


def seed_fleet(database_url: str, port: int) -> None:
    """INSTANCES instances (services of PER_SERVICE) at distinct loopback addresses, inserted through the db
    layer's models in one transaction."""
    from db.models import Instance, Service
    from db.session import make_engine, make_session_factory

    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        for s in range(INSTANCES // PER_SERVICE):
            service = Service(name=f"scale-{s:03d}", health_path="/health")
            service.instances = [Instance(url=f"http://{address(s * PER_SERVICE + j)}:{port}")
                                 for j in range(PER_SERVICE)]
            session.add(service)
    engine.dispose()


def engine_metrics(base: str) -> dict[str, float]:
    """The engine's schedule counters from its /metrics."""
    out: dict[str, float] = {}
    text = httpx.get(f"{base}/metrics", timeout=10.0, trust_env=False).text
    for line in text.splitlines():
        if line.startswith("mm_health_"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


@contextmanager
def nginx(tmp: Path, ours: int, peer: int) -> Iterator[subprocess.Popen[bytes]]:
    """The target, pinned to TARGET_CPU; stopped afterwards."""
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, ours=ours, peer=peer))
    proc = start(["taskset", "-c", TARGET_CPU, NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"),
                  "-e", str(tmp / "error.log")], tmp / "nginx.out")
    try:
        wait_http(f"http://{address(0)}:{ours}/health", proc)
        yield proc
    finally:
        stop(proc, signal.SIGQUIT)


def flush_wait() -> None:
    """nginx writes its buffered log at most a second later."""
    time.sleep(2.0)


def measure_ours(tmp: Path, database_url: str, ours: int, measure_s: float) -> tuple[float, Window, dict[str, float]]:
    """Run the engine over the fleet; its CPU per check, nginx's record of the window, its own counters."""
    api_port = free_port()
    data = tmp / "engine"
    data.mkdir()
    env = {**{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "LOG_LEVEL", "JWT_SECRET"}},
           "DATABASE_URL": database_url, "DATA_DIR": str(data), "API_HOST": "127.0.0.1", "API_PORT": str(api_port),
           "JWT_SECRET": secrets.token_urlsafe(48), "ADMIN_PASSWORD": secrets.token_urlsafe(16),
           "INSTANCE_ALLOWLIST": "127.0.0.0/8", "HEALTH_INTERVAL": str(INTERVAL_S), "COLLECT_INTERVAL": "3600",
           "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    proc = start(["taskset", "-c", ENGINE_CPU, sys.executable, "-m", "engine", "serve"], tmp / "engine.log",
                 env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{api_port}"
    try:
        wait_http(f"{base}/api/health", proc)
        time.sleep(WARMUP_S)
        before = engine_metrics(base)
        others = Others([proc.pid])
        c0, t0 = cpu_s(proc.pid), time.time()
        time.sleep(measure_s)
        c1, t1 = cpu_s(proc.pid), time.time()
        busy = others.cores()
        after = engine_metrics(base)
    finally:
        stop(proc, signal.SIGINT)
    flush_wait()
    window = read_window(tmp / "access.log", ours, t0, t1, INTERVAL_S)
    counters = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    counters["others_cores"] = busy
    counters["load"] = others.load
    return (c1 - c0) / max(window.requests, 1), window, counters


def measure_peer(tmp: Path, peer: int, measure_s: float, instances: int) -> tuple[float, Window, float, float, float]:
    """Prometheus + blackbox over the first `instances` of the fleet; blackbox's CPU per probe, nginx's record,
    Prometheus' CPU per probe, load, others' cores."""
    bb_port, prom_port = free_port(), free_port()
    tmp = tmp / f"peer-{instances}"
    tmp.mkdir()
    (tmp / "blackbox.yml").write_text(BLACKBOX_CONF)
    targets = tmp / "targets.yml"
    targets.write_text("- targets:\n" + "".join(f"  - http://{address(k)}:{peer}/health\n"
                                                 for k in range(instances)))
    (tmp / "prometheus.yml").write_text(PROMETHEUS_CONF.format(targets=targets, blackbox=bb_port))
    blackbox = start(["taskset", "-c", ENGINE_CPU, BLACKBOX, f"--config.file={tmp / 'blackbox.yml'}",
                      f"--web.listen-address=127.0.0.1:{bb_port}", "--log.level=warn"], tmp / "blackbox.log")
    prometheus = None
    try:
        wait_http(f"http://127.0.0.1:{bb_port}/metrics", blackbox)
        prometheus = start(["taskset", "-c", TARGET_CPU, PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}",
                            f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}",
                            "--log.level=warn"], tmp / "prometheus.log")
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready", prometheus)
        time.sleep(WARMUP_S)
        others = Others([blackbox.pid, prometheus.pid])
        b0, p0, t0 = cpu_s(blackbox.pid), cpu_s(prometheus.pid), time.time()
        time.sleep(measure_s)
        b1, p1, t1 = cpu_s(blackbox.pid), cpu_s(prometheus.pid), time.time()
        busy = others.cores()
    finally:
        if prometheus is not None:
            stop(prometheus)
        stop(blackbox)
    flush_wait()
    window = read_window(tmp.parent / "access.log", peer, t0, t1, INTERVAL_S)
    probes = max(window.requests, 1)
    return (b1 - b0) / probes, window, (p1 - p0) / probes, others.load, busy


def describe(name: str, window: Window, measure_s: float, instances: int) -> str:
    """One line of what nginx saw."""
    due = instances * measure_s / INTERVAL_S
    return (f"{name}: {window.requests} requests in {measure_s:g} s ({due:.0f} due) over {window.instances_seen} of "
            f"{instances} instances; {window.checked_every_round} checked every round (no gap over 1.5 intervals), "
            f"fewest requests {window.min_per_instance}; interval deviation p99 {window.p99_deviation_s * 1000:.0f} "
            f"ms, max {window.max_deviation_s * 1000:.0f} ms")


def main(argv: list[str] | None = None) -> int:
    """Run both sides; print the figures and the verdict (exit 1 when a goal is missed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", type=float, default=MEASURE_S, help="seconds of each measured window")
    parser.add_argument("--skip-peer", action="store_true", help="ours only")
    args = parser.parse_args(argv)
    load = wait_quiet()
    print(f"load average before: {load:.2f} ({psutil.cpu_count()} cores)", flush=True)
    ours_port, peer_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="mm-health-scale-") as name, scratch_database() as database_url:
        tmp = Path(name)
        began = time.monotonic()
        seed_fleet(database_url, ours_port)
        print(f"{INSTANCES} instances inserted through the db layer in {time.monotonic() - began:.1f} s", flush=True)
        with nginx(tmp, ours_port, peer_port):
            ours_cpu, ours_window, counters = measure_ours(tmp, database_url, ours_port, args.measure)
            print(describe("ours", ours_window, args.measure, INSTANCES))
            started, late, skipped, overrun = (counters.get(f"mm_health_{k}_total", 0.0) for k in (
                "checks_started", "checks_late", "checks_skipped", "intervals_overrun"))
            print(f"ours: engine counters in the window: started {started:.0f}, late {late:.0f}, skipped "
                  f"{skipped:.0f}, intervals overrun {overrun:.0f}; load {counters['load']:.2f}, "
                  f"others used {counters['others_cores']:.2f} cores")
            print(f"ours: CPU per check {ours_cpu * 1e3:.3f} ms (engine process, all threads)", flush=True)
            ok = ours_window.checked_every_round == INSTANCES and ours_window.p99_deviation_s <= GOAL_DEVIATION_S
            if args.skip_peer:
                return 0 if ok else 1
            peers = {}
            for count in (INSTANCES, PEER_KEPT):
                peer_cpu, peer_window, prom_cpu, peer_load, peer_busy = measure_peer(tmp, peer_port, args.measure,
                                                                                     count)
                print(describe(f"blackbox at {count}", peer_window, args.measure, count))
                print(f"blackbox at {count}: CPU per probe {peer_cpu * 1e3:.3f} ms (blackbox_exporter; Prometheus "
                      f"{prom_cpu * 1e3:.3f} ms per probe more); load {peer_load:.2f}, others used {peer_busy:.2f} "
                      "cores", flush=True)
                peers[count] = peer_cpu
    # the peer's cheapest figure is the one compared: at 10,000 it may not keep up, and a probe cut off costs less
    peer_cpu = min(peers.values())
    ratio = ours_cpu / peer_cpu if peer_cpu > 0 else math.inf
    within = ratio <= GOAL_RATIO
    every = ours_window.checked_every_round == INSTANCES
    print(f"CPU per check: ours {ours_cpu * 1e3:.3f} ms, blackbox {peer_cpu * 1e3:.3f} ms (its lower figure), ratio "
          f"{ratio:.3f}x (goal <= {GOAL_RATIO:g}x: {'ok' if within else 'OVER'}); ours every instance every round: "
          f"{'ok' if every else 'NO'}; p99 interval deviation {ours_window.p99_deviation_s * 1000:.0f} ms (goal <= "
          f"{GOAL_DEVIATION_S * 1000:.0f} ms: {'ok' if ours_window.p99_deviation_s <= GOAL_DEVIATION_S else 'OVER'})")
    return 0 if ok and within else 1


if __name__ == "__main__":
    sys.exit(main())
