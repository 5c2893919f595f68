"""The browser test's world: a database of its own with a week of metrics for 20 services, the real app
(`python -m engine up --demo`) on it (through a relay that can cut it off) with some traffic, failures and scaling
behind it, and headless Chromium logged in to its dashboard."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url, text

from bench.seed_metrics import seed, service_names
from db.session import make_engine
from tests.browser.cdp import CdpError, Chromium, chromium_path
from tests.browser.dashboard import Dashboard
from tests.browser.relay import Relay
from tests.conftest import MANAGED_PORTS, TEST_JWT_SECRET, drop_database, free_port, free_port_base, wait_for

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "browser-test-admin-pw"  # the first admin of a throwaway database
SEED_SERVICES, SEED_DAYS = 20, 7.0
# BROWSER_SPEED_ROWS=10080000 is a full week: 20 services x 7 days, a row each 1.2 s (about 2 minutes to seed);
# by default one row a minute, which builds the same 1-minute rollup that charts of a week read, in seconds
DEFAULT_ROWS = 201_600
START_TIMEOUT_S = 90.0


def seed_rows() -> int:
    """Rows of seeded metrics: BROWSER_SPEED_ROWS (e.g. 10080000, a row each 1.2 s for a week), else one a minute."""
    raw = os.environ.get("BROWSER_SPEED_ROWS", "").replace("_", "").strip()
    return int(raw) if raw else DEFAULT_ROWS


@dataclass(frozen=True)
class Seeded:
    """What seeding wrote."""

    rows: int
    seconds: float
    services: int = SEED_SERVICES
    days: float = SEED_DAYS


@dataclass(frozen=True)
class RunningApp:
    """The app under test: dashboard address, an admin's API client, the engine's console log; its status page
    (STATUS_PAGE_ENABLED) is on."""

    dashboard_url: str
    api: httpx.Client
    log: Path
    seeded: Seeded
    database: Relay  # the app's only way to its database
    api_link: Relay  # the dashboard's only way to the API


def _wait(predicate: Callable[[], Any], what: str, timeout: float, step: float = 0.2) -> Any:
    """tests.conftest.wait_for, an HTTP error counting as not yet; an AssertionError naming `what` at the timeout."""

    def answered() -> Any:
        try:
            return predicate()
        except httpx.HTTPError:
            return None

    value = wait_for(answered, timeout, step)
    if not value:
        raise AssertionError(f"{what} within {timeout:g} s")
    return value


@pytest.fixture(scope="module")
def browser_database(database_url: str) -> Iterator[str]:
    """An empty database of its own on the test server, dropped afterwards."""
    name = f"mm_browser_{uuid.uuid4().hex[:8]}"
    admin = make_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=None)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(admin, name)
        admin.dispose()


@pytest.fixture(scope="module")
def seeded(browser_database: str) -> Seeded:
    """A week of metrics for bench-01..20 up to now (bench/seed_metrics.py; partitions and rollup as in production)."""
    rows = seed_rows()
    cadence = SEED_SERVICES * SEED_DAYS * 86_400 / rows
    began = time.monotonic()
    written = seed(browser_database, services=SEED_SERVICES, days=SEED_DAYS, cadence_s=cadence, end=datetime.now(UTC))
    return Seeded(rows=written, seconds=time.monotonic() - began)


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "engine", "up", "--demo"], cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C to the whole group, as a terminal sends it; SIGKILL if it does not end in time."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def _load_test(api: httpx.Client, service: str, rate: float) -> None:
    """A 2-second load test on service's /work, after the previous one ended."""
    _wait(lambda: api.get("/api/load-test/status").json().get("status") != "running", "the load test finished", 30)
    api.post("/api/load-test/start", json={"concurrentUsers": 4, "requestsPerSecond": rate, "duration": 2,
                                           "targetService": service, "path": "/work"}).raise_for_status()


def _generate_activity(api: httpx.Client) -> None:
    """Traffic, a load test, failures the breaker and health checks see, a scaling action and a second user, so
    every page has something measured to show."""
    services = {s["name"]: s for s in api.get("/api/services").json()}
    # a short breaker timeout on payments, so its timeline goes CLOSED -> OPEN -> HALF_OPEN -> CLOSED in seconds
    api.put("/api/circuit-breakers/payments", json={"timeout": 1500}).raise_for_status()
    _load_test(api, "orders", 40)
    for _ in range(20):
        for name in ("orders", "payments", "inventory"):
            assert api.get(f"/proxy/{name}/work").status_code == 200
    api.post("/api/simulate/service-failure", json={"serviceName": "payments", "duration": 1500,
                                                    "statusCode": 503}).raise_for_status()
    api.post("/api/simulate/network-latency", json={"latency": 40, "duration": 3000,
                                                    "serviceName": "inventory"}).raise_for_status()
    for _ in range(10):
        api.get("/proxy/payments/work")  # 503s: the breaker opens
        api.get("/proxy/inventory/work")
    api.post("/api/users", json={"username": "viewer", "password": "viewer-password", "role": "viewer"}
             ).raise_for_status()
    _alerting(api)
    api.post(f"/api/services/{services['orders']['id']}/scale-up", timeout=60).raise_for_status()

    def breaker_closed_again() -> bool:
        api.get("/proxy/payments/work")
        breakers = api.get("/api/circuit-breakers").json()["breakers"]
        state = next(b for b in breakers if b["serviceName"] == "payments")["state"]
        return str(state).upper() == "CLOSED"

    _wait(breaker_closed_again, "the payments breaker closed again after the failure ended", 20, step=0.5)
    _load_test(api, "payments", 60)  # a second run, so the Load Test page can compare two
    # still active while the pages are visited (the Overview banner, the Chaos page's active list); the engine
    # ends it when it stops
    api.post("/api/simulate/network-latency", json={"latency": 5, "duration": 600_000,
                                                    "serviceName": "bench-20"}).raise_for_status()


def _alerting(api: httpx.Client) -> None:
    """A webhook channel nobody listens on (its deliveries retry, then fail: the delivery log has rows), rules that
    the payments failure before trips (its 503s fire the critical error-rate rule, which opens an incident), and a
    silence, so the alerting pages have something to show."""
    hook = api.post("/api/alert-channels", json={
        "name": "ops-webhook", "type": "webhook",
        "config": {"url": f"http://127.0.0.1:{free_port()}/hook", "secret": "browser-test-signing-secret"}})
    hook.raise_for_status()
    for rule in ({"name": "payments-down", "kind": "service-down", "service": "payments", "severity": "critical",
                  "channels": [hook.json()["id"]]},
                 {"name": "errors-high", "kind": "error-rate", "threshold": 5, "windowSeconds": 120, "forSeconds": 0,
                  "severity": "critical", "channels": [hook.json()["id"]]},
                 {"name": "monitor-db", "kind": "monitor-database", "severity": "critical"}):
        api.post("/api/alert-rules", json=rule).raise_for_status()
    now = datetime.now(UTC)
    api.post("/api/silences", json={"service": "inventory", "startsAt": now.isoformat(),
                                    "endsAt": (now + timedelta(minutes=30)).isoformat(),
                                    "comment": "the browser test slows inventory on purpose"}).raise_for_status()


QUICK_EXPERIMENT: dict[str, Any] = {
    "name": "browser-quick", "description": "two seconds at 20 req/s on orders",
    "load": {"service": "orders", "stages": [{"durationS": 2, "targetRps": 20}], "requests": {"path": "/work?ms=5"}},
    "thresholds": ["p95 < 1000"],
}


def _run_experiment(api: httpx.Client) -> None:
    """One short experiment run to its end, so the Experiments page shows a finished run and its verdict."""
    created = api.post("/api/experiments", json=QUICK_EXPERIMENT)
    created.raise_for_status()
    run = api.post(f"/api/experiments/{created.json()['id']}/run")
    run.raise_for_status()
    _wait(lambda: api.get(f"/api/experiment-runs/{run.json()['id']}").json()["status"] != "running",
          "the experiment ran", 30)


@contextmanager
def _trickle(api: httpx.Client, every_s: float = 0.25) -> Iterator[None]:
    """Proxied requests to the demo services while the pages are visited, so "the last minute" has traffic."""
    stop = threading.Event()
    client = httpx.Client(base_url=api.base_url, headers=api.headers, trust_env=False, timeout=10)

    def send() -> None:
        for name in itertools.cycle(("orders", "payments", "inventory")):
            if stop.wait(every_s):
                return
            with contextlib.suppress(httpx.HTTPError):
                client.get(f"/proxy/{name}/work")

    thread = threading.Thread(target=send, name="browser-test-traffic", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=15)
        client.close()


def _connector(url: str) -> Callable[[], socket.socket]:
    """How to reach the PostgreSQL of a URL: TCP, or the Unix socket of an embedded server (host=/its/dir)."""
    u = make_url(url)
    host = u.host or u.query.get("host") or "127.0.0.1"
    host = host if isinstance(host, str) else host[0]
    port = u.port or 5432
    if host.startswith("/"):
        def unix() -> socket.socket:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(f"{host}/.s.PGSQL.{port}")
            return s
        return unix
    return lambda: socket.create_connection((host, port), timeout=5)


@pytest.fixture(scope="module")
def database_relay(browser_database: str) -> Iterator[Relay]:
    """The app's way to its database: a relay the outage test cuts."""
    relay = Relay(_connector(browser_database))
    try:
        yield relay
    finally:
        relay.close()


@pytest.fixture(scope="module")
def running_app(browser_database: str, seeded: Seeded, database_relay: Relay,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """`python -m engine up --demo` on the seeded database, with the bench services registered and some activity."""
    data_dir = tmp_path_factory.mktemp("browser-app")
    api_port, dashboard_port = free_port(), free_port()
    relayed = make_url(browser_database).set(host="127.0.0.1", port=database_relay.port).difference_update_query(
        ["host", "port"]).render_as_string(hide_password=False)
    # the dashboard's way to the API, a relay too (the test's own client goes straight to the API)
    api_link = Relay(lambda: socket.create_connection(("127.0.0.1", api_port), timeout=5))
    env = dict(os.environ, API_URL=f"http://127.0.0.1:{api_link.port}", DATABASE_URL=relayed,
               DATA_DIR=str(data_dir), API_PORT=str(api_port), PROXY_PORT="0", DASHBOARD_PORT=str(dashboard_port),
               DEMO_PORT_BASE=str(free_port_base(MANAGED_PORTS)), ADMIN_PASSWORD=ADMIN_PASSWORD,
               JWT_SECRET=TEST_JWT_SECRET, HEALTH_INTERVAL="1", COLLECT_INTERVAL="1", STATUS_PAGE_ENABLED="true",
               STATUS_PAGE_TITLE="Browser test status")
    log = data_dir / "engine.log"
    proc = _start(env, log)
    api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", trust_env=False, timeout=15)
    try:
        try:
            _wait(lambda: proc.poll() is None and api.get("/api/health").status_code == 200, "the API answered",
                  START_TIMEOUT_S)
            token = api.post("/api/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
            api.headers["Authorization"] = f"Bearer {token['token']}"
            _wait(lambda: len([s for s in api.get("/api/services").json() if s["status"] == "healthy"]) == 3,
                  "the demo fleet is healthy", START_TIMEOUT_S)
            demo = api.get("/api/services").json()
            # the seeded services, registered so every page lists them; their one instance is a demo process
            # (shared: instances are unique per service), so they are checked and healthy like the rest
            target = demo[0]["instances"][0]["url"]
            for name in service_names(SEED_SERVICES):
                api.post("/api/services", json={"name": name, "url": target}).raise_for_status()
            _generate_activity(api)
            _wait(lambda: api.get("/api/load-test/status").json().get("status") != "running",
                  "the load test finished", 30)
            _run_experiment(api)
            _wait(lambda: httpx.get(f"http://127.0.0.1:{dashboard_port}/_stcore/health", trust_env=False).text
                  == "ok", "the dashboard answered", START_TIMEOUT_S)
        except (AssertionError, httpx.HTTPError) as exc:
            raise AssertionError(f"the app under test did not come up: {exc}\n--- engine log ---\n{_tail(log)}"
                                 ) from exc
        with _trickle(api):
            yield RunningApp(f"http://127.0.0.1:{dashboard_port}/", api, log, seeded, database_relay, api_link)
    finally:
        api.close()
        _stop(proc)
        api_link.close()


@pytest.fixture(scope="module")
def shots_dir() -> Path:
    """Where the screenshots go: BROWSER_SHOTS, else a new directory under /tmp/mm-browser-shots (outside git)."""
    chosen = os.environ.get("BROWSER_SHOTS")
    path = Path(chosen) if chosen else Path("/tmp/mm-browser-shots") / f"{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    """Headless Chromium; a failure (not a skip) when it is not installed."""
    try:
        binary = chromium_path()
    except CdpError as exc:
        pytest.fail(str(exc))
    with Chromium(binary) as browser:
        yield browser


@pytest.fixture(scope="module")
def dashboard(chromium: Chromium, running_app: RunningApp, shots_dir: Path) -> Dashboard:
    """The dashboard in Chromium, logged in as admin through the login form (so the Users page is offered too).

    Chromium comes first: without it the test fails at once, before seeding and starting the app."""
    board = Dashboard(chromium, running_app.dashboard_url)
    try:
        board.log_in("admin", ADMIN_PASSWORD)
    except (AssertionError, CdpError) as exc:
        shot = chromium.screenshot(shots_dir / "login-failed.png")
        raise AssertionError(f"{exc}\nscreenshot: {shot}\n--- engine log ---\n{_tail(running_app.log)}") from exc
    return board
