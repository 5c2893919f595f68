"""The fleet views at 10,000 instances: registering 500 services of 20 instances through the API, listing them, and
drawing the Overview and Services pages.

One run starts a real engine (`python -m engine serve`, no demo fleet) on a scratch database and, from one client
over loopback HTTP, one request at a time:
- registers `--services` services of `--instances` instances each (POST /api/services; the instances are loopback
  addresses nothing answers on, so the engine's checks find them unhealthy), timing the whole and each call;
- times GET /api/services as the median of 7 after a warm-up: the first page (limit=50), a filtered page
  (status=unhealthy,degraded&name=svc-1&limit=50) and the whole fleet (no parameters);
- renders pages/overview.py and pages/services.py with Streamlit's AppTest against the engine and the database,
  logged in as admin: the first render (imports, caches cold) and the median of 3 after it.
It prints each figure against its goal (registration <= 20 s, a page <= 200 ms, a page render <= 2 s) and exits
non-zero when one is over. The engine's API rate limit is raised for the run (RATE_LIMIT_PER_S=1000): at the default
20 requests/s, 500 registrations alone take 25 s. Usage: python -m bench.fleet_views [--services 500] [--instances 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import psutil

from bench.common import median_ms, scratch_database
from bench.outage_rig import ROOT, EngineProcess, free_port, wait_until

PASSWORD = "bench-admin-password"
GOAL_REGISTER_S = 20.0
GOAL_PAGE_MS = 200.0
GOAL_RENDER_S = 2.0
QUERIES = {
    "first page (limit=50)": "limit=50",
    "filtered page (status=unhealthy,degraded&name=svc-1&limit=50)": "status=unhealthy,degraded&name=svc-1&limit=50",
    "whole fleet (no parameters)": "",
}


def instance_urls(service: int, instances: int) -> list[str]:
    """Loopback addresses nothing listens on: 127.1.x.y, a port per instance."""
    return [f"http://127.1.{service // 250}.{service % 250 + 1}:{9000 + k}" for k in range(instances)]


@contextmanager
def engine(url: str, workdir: Path) -> Iterator[tuple[httpx.Client, str]]:
    """A started engine on a free port and an admin's client of its API; stopped afterwards."""
    port = free_port()
    env = {"DATABASE_URL": url, "DATA_DIR": str(workdir / "data"), "API_PORT": str(port), "ADMIN_PASSWORD": PASSWORD,
           "RATE_LIMIT_PER_S": "1000", "RATE_LIMIT_BURST": "10000"}
    proc = EngineProcess(env, workdir / "engine.log", demo=False)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as api:
            if not wait_until(lambda: proc.alive and api.get("/api/health").status_code == 200, 60):
                raise RuntimeError(f"the engine did not start:\n{proc.console()[-2000:]}")
            answer = api.post("/api/auth/token", json={"username": "admin", "password": PASSWORD})
            answer.raise_for_status()
            api.headers["Authorization"] = f"Bearer {answer.json()['token']}"
            yield api, base
    finally:
        proc.stop()


def register(api: httpx.Client, services: int, instances: int) -> tuple[float, list[float]]:
    """Seconds for all registrations, and each call's milliseconds."""
    each = []
    began = time.perf_counter()
    for n in range(services):
        t = time.perf_counter()
        r = api.post("/api/services", json={"name": f"svc-{n:03d}", "instances": instance_urls(n, instances)})
        each.append((time.perf_counter() - t) * 1000)
        if r.status_code != 201:
            raise RuntimeError(f"registering svc-{n:03d}: {r.status_code} {r.text[:300]}")
    return time.perf_counter() - began, each


def render_times(page: str, token: str, runs: int = 3) -> tuple[float, float]:
    """Seconds of a page's first AppTest render and the median of `runs` after it (a fresh AppTest each)."""
    from streamlit.testing.v1 import AppTest

    from contract.roles import Role
    from ui import session

    samples = []
    for _ in range(1 + runs):
        at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=120)
        for key, value in session.state_for(token, Role.ADMIN, "admin", datetime.now(UTC) + timedelta(hours=1)).items():
            at.session_state[key] = value
        began = time.perf_counter()
        at.run()
        samples.append(time.perf_counter() - began)
        if at.exception or at.error:
            raise RuntimeError(f"{page}: {[e.value for e in [*at.exception, *at.error]]}")
    return samples[0], statistics.median(samples[1:])


def verdict(value: float, goal: float) -> str:
    """ok or OVER against a goal."""
    return "ok" if value <= goal else "OVER"


def measure_registration(api: httpx.Client, services: int, instances: int) -> bool:
    """Register the fleet and print the time against its goal; whether it is met."""
    seconds, each = register(api, services, instances)
    print(f"register {services} services x {instances} instances ({services * instances:,d}) through the API: "
          f"{seconds:.1f} s (goal <= {GOAL_REGISTER_S:.0f} s: {verdict(seconds, GOAL_REGISTER_S)}); "
          f"per call median {statistics.median(each):.1f} ms, first 50 {statistics.mean(each[:50]):.1f} ms, "
          f"last 50 {statistics.mean(each[-50:]):.1f} ms")
    return seconds <= GOAL_REGISTER_S


def measure_lists(api: httpx.Client) -> bool:
    """Time the first page, a filtered page and the whole fleet; whether the pages meet their goal."""
    # the checker's first rounds: services turn unhealthy, so the filtered page has rows to find
    began = time.perf_counter()
    wait_until(lambda: api.get("/api/services?status=unhealthy&limit=1").headers["X-Total-Count"] != "0", 60)
    counts = {s: api.get(f"/api/services?status={s}&limit=1").headers["X-Total-Count"]
              for s in ("healthy", "degraded", "unhealthy", "unknown")}
    print(f"services by status after {time.perf_counter() - began:.0f} s of checks: {counts}")
    ok = True
    for label, query in QUERIES.items():
        r = api.get(f"/api/services?{query}")
        r.raise_for_status()
        ms = median_ms(partial(api.get, f"/api/services?{query}"))
        paged = "limit" in query
        goal = f" (goal <= {GOAL_PAGE_MS:.0f} ms: {verdict(ms, GOAL_PAGE_MS)})" if paged else ""
        print(f"GET /api/services {label}: {ms:.1f} ms, {len(r.json())} services of "
              f"{r.headers['X-Total-Count']} matching, {len(r.content) / 1024:.0f} KiB{goal}")
        ok &= not paged or ms <= GOAL_PAGE_MS
    return ok


def measure_renders(api: httpx.Client, url: str, base: str, instances: int) -> bool:
    """Render the Overview and Services pages against this engine and database; whether both meet the goal."""
    os.environ["DATABASE_URL"] = url
    os.environ["API_URL"] = base
    token = str(api.headers["Authorization"]).removeprefix("Bearer ")
    ok = True
    for page in ("overview.py", "services.py"):
        first, warm = render_times(page, token)
        print(f"render pages/{page} (AppTest) at {instances:,d} instances: first {first:.2f} s, then median "
              f"{warm:.2f} s (goal <= {GOAL_RENDER_S:.0f} s: {verdict(warm, GOAL_RENDER_S)})")
        ok &= warm <= GOAL_RENDER_S
    return ok


def main() -> int:
    """Register, list and render; print each figure against its goal; non-zero when one is over."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--instances", type=int, default=20)
    args = parser.parse_args()
    psutil.cpu_percent()
    print(f"load average {os.getloadavg()[0]:.2f} on {psutil.cpu_count()} cores at the start")
    with (scratch_database() as url, tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp,
          engine(url, Path(tmp)) as (api, base)):
        ok = measure_registration(api, args.services, args.instances)
        ok &= measure_lists(api)
        ok &= measure_renders(api, url, base, args.services * args.instances)
    print(f"load average {os.getloadavg()[0]:.2f}, CPU {psutil.cpu_percent():.0f} % busy over the run")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
