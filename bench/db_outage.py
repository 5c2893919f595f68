"""A PostgreSQL outage under load: the engine keeps checking and routing, buffers, and loses no metric bucket.

`python -m bench.db_outage [--outage 60]` starts its own embedded PostgreSQL in a temp dir and the engine
(`python -m engine serve --demo`) as a real process on it, waits for the demo fleet, starts a load test on
orders, a network-latency simulation on payments that ends during the outage, then stops PostgreSQL
(pg_ctl stop, fast) for the outage. Meanwhile it polls /api/health, /api/load-test/status and one proxied
request every second and kills one inventory process, so supervision has work while the database is gone.
It restarts PostgreSQL on the same data dir and socket, waits for the writer's backlog to be written and
the load test to end, then checks the database: per demo service no metric bucket is missing from
[outage start - margin, outage end + margin], every second of the load test has its sample, the
simulation ended, and inventory is back to two instances. It prints the figures and exits 1 on a failure.
Every process it started is stopped at the end, whatever happened.
"""

from __future__ import annotations

import argparse
import itertools
import math
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from bench.outage_rig import EngineProcess, OutagePostgres, free_port, wait_until
from db.session import make_engine
from engine.fleet.demo import DEMO_SERVICES

PASSWORD = "db-outage-admin-password"
PROXY_PATH = "/proxy/orders/work?ms=1&cpu=0"
TRICKLE = 50  # pending at or below this is new events between two flushes, not a backlog
Say = Callable[[str], None]


@dataclass(frozen=True)
class Config:
    """One scenario."""

    outage_s: float = 60.0
    margin_s: float = 10.0  # metric coverage is checked this long before and after the outage
    collect_interval: float = 5.0
    health_interval: float = 5.0
    poll_s: float = 1.0
    rate: float = 200.0
    users: int = 20
    load_test_s: float | None = None  # default: outage + 40 s
    port_base: int = 18800
    startup_timeout_s: float = 90.0
    recovery_timeout_s: float = 60.0
    keep_dir: bool = False

    @property
    def load_duration(self) -> float:
        """How long the load test runs."""
        return self.load_test_s if self.load_test_s is not None else self.outage_s + 40.0


@dataclass(frozen=True)
class Probe:
    """One poll: seconds since the outage began (negative before), what each endpoint said."""

    t: float
    phase: str  # outage | recovery
    engine_alive: bool
    health: int | None
    database: str | None
    database_ok: bool | None
    pending: int | None
    dropped: int | None
    load_test: int | None
    proxy: int | None
    db_alert: str | None = None  # the state of the monitor-database alert in /api/alerts (None: no such alert)


@dataclass(frozen=True)
class Coverage:
    """Metric buckets of one service in the checked window."""

    service: str
    bucket_s: float | None
    expected: int
    found: int
    missing: int
    max_gap_s: float | None


@dataclass
class Report:
    """Everything the scenario measured; failures() says what went wrong."""

    config: Config
    outage_s: float = 0.0
    probes: list[Probe] = field(default_factory=list)
    coverage: list[Coverage] = field(default_factory=list)
    recovery_s: float | None = None
    dropped: int | None = None
    load_test_status: str | None = None
    samples_expected: int = 0
    samples_found: int = 0
    samples_missing: list[int] = field(default_factory=list)
    simulation_status: str | None = None
    inventory_instances: int | None = None
    killed: str | None = None
    rows_during_outage: dict[str, int] = field(default_factory=dict)
    log_sources_during_outage: dict[str, int] = field(default_factory=dict)
    engine_tracebacks: int = 0
    engine_alive_at_end: bool = False
    engine_exit: int | None = None
    error: str | None = None

    def during(self, phase: str) -> list[Probe]:
        """The probes of one phase."""
        return [p for p in self.probes if p.phase == phase]

    @property
    def max_pending(self) -> int:
        """The largest backlog /api/health reported."""
        return max((p.pending or 0 for p in self.probes), default=0)

    def failures(self) -> list[str]:
        """What did not hold (empty: the engine survived the outage)."""
        out = [] if self.error is None else [f"scenario error: {self.error}"]
        outage, after = self.during("outage"), self.during("recovery")
        if not self.probes or not all(p.engine_alive for p in self.probes) or not self.engine_alive_at_end:
            out.append("the engine process died")
        if not outage or not all(p.health == 503 and p.database == "down" for p in outage):
            out.append("/api/health did not report 503, database down, through the outage")
        if not any((p.pending or 0) > 0 for p in outage):
            out.append("writer.pending never rose during the outage")
        if not any(p.proxy == 200 for p in outage) or any(p.proxy != 200 for p in outage):
            out.append("routing (/proxy) did not answer 200 throughout the outage")
        if not after or after[-1].health != 200 or after[-1].pending != 0:
            out.append("after the outage /api/health is not 200 with writer.pending 0")
        if self.dropped:
            out.append(f"the writer dropped {self.dropped} event(s)")
        if not self.coverage or any(c.missing for c in self.coverage):
            out.append("metric buckets are missing")
        if self.load_test_status != "completed" or self.samples_missing or self.samples_found < self.samples_expected:
            out.append(f"load test {self.load_test_status}, samples {self.samples_found}/{self.samples_expected}")
        if self.simulation_status != "completed":
            out.append(f"the simulation that ended during the outage is {self.simulation_status}")
        if self.killed is not None and self.inventory_instances != 2:
            out.append(f"inventory has {self.inventory_instances} instance(s) after its killed one, not 2")
        if not any(p.db_alert == "firing" for p in outage) or not after or after[-1].db_alert != "resolved":
            out.append("the monitor-database alert did not fire during the outage and resolve after it")
        if self.engine_tracebacks:
            out.append(f"the engine printed {self.engine_tracebacks} traceback(s) during and after the outage")
        if self.engine_exit not in (0, None):
            out.append(f"the engine exited with code {self.engine_exit} on SIGINT")
        return out


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _probe(api: httpx.Client, engine: EngineProcess, t: float, phase: str) -> Probe:
    def code(path: str) -> tuple[int | None, dict[str, Any]]:
        try:
            r = api.get(path)
        except httpx.HTTPError:
            return None, {}
        return r.status_code, _json(r)

    health, body = code("/api/health")
    load_test, _ = code("/api/load-test/status")
    proxy, _ = code(PROXY_PATH)
    writer = body.get("writer", {})
    try:
        alerts = api.get("/api/alerts").json()  # from the engine's memory: it answers during the outage
    except (httpx.HTTPError, ValueError):
        alerts = []
    db_alert = next((a["state"] for a in alerts if a.get("kind") == "monitor-database"), None)
    return Probe(round(t, 1), phase, engine.alive, health, body.get("database", {}).get("status"),
                 writer.get("databaseOk"), writer.get("pending"), writer.get("dropped"), load_test, proxy, db_alert)


def _healthy(api: httpx.Client, service: str) -> int:
    """Healthy instances of a service, as the API lists them."""
    rows = [s for s in api.get("/api/services").json() if s["name"] == service]
    return sum(1 for i in rows[0]["instances"] if i["status"] == "healthy") if rows else 0


def _coverage(rows: list[tuple[datetime, float]], service: str, start: datetime, end: datetime) -> Coverage:
    """Rows of one service around [start, end]: buckets expected, found, and how many are missing."""
    if not rows:
        return Coverage(service, None, 0, 0, -1, None)
    bucket = rows[0][1]
    span = timedelta(seconds=1.5 * bucket)
    times = [ts for ts, _ in rows]
    expected = math.floor((end - start).total_seconds() / bucket)
    found = sum(1 for ts in times if start <= ts <= end)
    points = [min(times[0], start), *times, max(times[-1], end)]  # an edge without a row is a gap too
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(points)]
    missing = sum(max(0, round(g / bucket) - 1) for g in gaps if g > span.total_seconds())
    return Coverage(service, bucket, expected, found, missing, round(max(gaps), 2) if gaps else None)


def _check_database(report: Report, url: str, test_id: int, sim_id: int | None, start: datetime,
                    end: datetime) -> None:
    cfg = report.config
    lo, hi = start - timedelta(seconds=cfg.margin_s), end + timedelta(seconds=cfg.margin_s)
    span = timedelta(seconds=1.5 * cfg.collect_interval)
    db = make_engine(url, poolclass=None)
    try:
        with db.connect() as c:
            for service in DEMO_SERVICES:
                rows = c.execute(text(
                    "SELECT timestamp, bucket_seconds FROM metrics WHERE service_name = :s "
                    "AND timestamp BETWEEN :a AND :b ORDER BY timestamp"),
                    {"s": service, "a": lo - span, "b": hi + span})
                report.coverage.append(_coverage([(r[0], float(r[1])) for r in rows], service, lo, hi))
            seconds = [r[0] for r in c.execute(text(
                "SELECT second FROM load_test_samples WHERE load_test_id = :i ORDER BY second"), {"i": test_id})]
            status = c.execute(text("SELECT status FROM load_tests WHERE id = :i"), {"i": test_id}).scalar()
            report.load_test_status = status
            report.samples_expected = math.floor(cfg.load_duration)
            report.samples_found = len(seconds)
            first = min(seconds[0], 1) if seconds else 1  # seconds count from 1 (0 if a run ever starts there)
            report.samples_missing = sorted(set(range(first, max(seconds[-1] if seconds else 0,
                                                                 report.samples_expected) + 1)) - set(seconds))
            if sim_id is not None:
                report.simulation_status = c.execute(
                    text("SELECT status FROM simulations WHERE id = :i"), {"i": sim_id}).scalar()
            window = {"a": start, "b": end}
            for table, column in (("metrics", "timestamp"), ("load_test_samples", "at"), ("logs", "timestamp"),
                                  ("circuit_breaker_transitions", "at")):
                report.rows_during_outage[table] = c.execute(text(
                    f"SELECT count(*) FROM {table} WHERE {column} BETWEEN :a AND :b"), window).scalar() or 0
            report.log_sources_during_outage = dict(c.execute(text(
                "SELECT source, count(*) FROM logs WHERE timestamp BETWEEN :a AND :b GROUP BY source"), window).all())
    finally:
        db.dispose()


@dataclass
class _Live:
    """What the phases share."""

    engine: EngineProcess
    api: httpx.Client
    url: str
    test_id: int = 0
    sim_id: int | None = None
    t0: float = 0.0


def _engine_env(cfg: Config, url: str, workdir: Path, port: int) -> dict[str, str]:
    return {"DATABASE_URL": url, "DATA_DIR": str(workdir / "data"), "API_PORT": str(port), "PROXY_PORT": "0",
            "DEMO_PORT_BASE": str(cfg.port_base), "COLLECT_INTERVAL": str(cfg.collect_interval),
            "HEALTH_INTERVAL": str(cfg.health_interval), "ADMIN_PASSWORD": PASSWORD, "RATE_LIMIT_PER_S": "1000",
            "RATE_LIMIT_BURST": "10000", "ALERT_INTERVAL": "0.5"}


def _prepare(cfg: Config, live: _Live, say: Say) -> float:
    """Engine up, fleet healthy, load test and simulation started; returns the lead before the outage."""
    api = live.api
    if not wait_until(lambda: live.engine.alive and api.get("/api/health").status_code == 200,
                      cfg.startup_timeout_s):
        raise RuntimeError("the engine did not answer /api/health with 200")
    token = api.post("/api/auth/token", json={"username": "admin", "password": PASSWORD}).json()["token"]
    api.headers["Authorization"] = f"Bearer {token}"

    def fleet_healthy() -> bool:
        services = api.get("/api/services").json()
        return len(services) == len(DEMO_SERVICES) and all(
            s["instanceCount"] == 2 and all(i["status"] == "healthy" for i in s["instances"]) for s in services)

    if not wait_until(fleet_healthy, cfg.startup_timeout_s):
        raise RuntimeError("the demo fleet did not become healthy")
    rule = api.post("/api/alert-rules", json={"name": "monitor-database", "kind": "monitor-database",
                                              "severity": "critical"})
    if rule.status_code != 201:
        raise RuntimeError(f"alert rule: {rule.status_code} {rule.text}")
    r = api.post("/api/load-test/start", json={
        "concurrentUsers": cfg.users, "requestsPerSecond": cfg.rate, "duration": cfg.load_duration,
        "targetService": "orders", "path": "/work?ms=5&cpu=0"})
    if r.status_code != 202:
        raise RuntimeError(f"load test start: {r.status_code} {r.text}")
    live.test_id = r.json()["id"]
    lead = max(cfg.margin_s, 2 * cfg.collect_interval)
    sim = api.post("/api/simulate/network-latency", json={
        "latency": 1, "duration": (lead + cfg.outage_s / 2) * 1000.0, "serviceName": "payments"})
    if sim.status_code != 201:
        raise RuntimeError(f"simulation start: {sim.status_code} {sim.text}")
    live.sim_id = sim.json()["id"]
    say(f"load test {live.test_id}: {cfg.rate:g} req/s for {cfg.load_duration:g} s on orders; "
        f"simulation {live.sim_id} ends mid-outage; outage in {lead:g} s")
    return lead


def _outage(cfg: Config, live: _Live, pg: OutagePostgres, report: Report, say: Say) -> tuple[datetime, datetime]:
    """PostgreSQL stopped for the outage, polled every poll_s, an inventory process killed a third in."""
    began = datetime.now(UTC)
    live.t0 = time.monotonic()
    pg.pause()
    say(f"PostgreSQL stopped at {began:%H:%M:%S}")
    try:
        while (t := time.monotonic() - live.t0) < cfg.outage_s:
            if report.killed is None and t >= cfg.outage_s / 3:
                report.killed = live.engine.kill_instance("inventory") or "none found"
            report.probes.append(_probe(live.api, live.engine, t, "outage"))
            time.sleep(max(0.0, cfg.poll_s - (time.monotonic() - live.t0 - t)))
    finally:
        pg.resume()
    ended = datetime.now(UTC)
    report.outage_s = round(time.monotonic() - live.t0, 1)
    say(f"PostgreSQL started again at {ended:%H:%M:%S} after {report.outage_s} s")
    return began, ended


def _recover(cfg: Config, live: _Live, report: Report) -> None:
    """Poll until the backlog is written, the load test is over and the checked window is closed."""
    api, engine, t0 = live.api, live.engine, live.t0
    settle = cfg.margin_s + 1.5 * cfg.collect_interval  # the window's last bucket is closed by then
    deadline = time.monotonic() + max(cfg.recovery_timeout_s, settle + cfg.load_duration)
    while time.monotonic() < deadline:
        p = _probe(api, engine, time.monotonic() - t0, "recovery")
        report.probes.append(p)
        if report.recovery_s is None and p.health == 200 and p.database_ok and (p.pending or 0) <= TRICKLE:
            report.recovery_s = round(time.monotonic() - t0 - report.outage_s, 1)
        over = api.get("/api/load-test/status").json().get("status") != "running"
        if report.recovery_s is not None and over and time.monotonic() - t0 > report.outage_s + settle:
            break
        time.sleep(cfg.poll_s)
    # events still arrive between flushes: catch a moment the buffer is empty (the backlog is long gone)
    last = wait_until(lambda: (p := _probe(api, engine, time.monotonic() - t0, "recovery")).pending == 0 and p,
                      10.0, 0.05)
    if last:
        report.probes.append(last)
    report.dropped = report.probes[-1].dropped if report.probes else None
    if report.killed:
        report.inventory_instances = wait_until(lambda: _healthy(api, "inventory") == 2 and 2, 30) or _healthy(
            api, "inventory")
    report.engine_alive_at_end = engine.alive


def run(cfg: Config, say: Say = print) -> Report:
    """The whole scenario; never raises (an error is in the report), always stops what it started."""
    report = Report(cfg)
    workdir = Path(tempfile.mkdtemp(prefix="db-outage-"))
    pg = OutagePostgres(workdir)
    live: _Live | None = None
    try:
        url = pg.start()
        port = free_port()
        engine = EngineProcess(_engine_env(cfg, url, workdir, port), workdir / "engine.log")
        live = _Live(engine, httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=5.0), url)
        say(f"PostgreSQL in {pg.pgdata}; engine on port {port}, console {engine.log_path}")
        time.sleep(_prepare(cfg, live, say))
        mark = engine.console_size()
        began, ended = _outage(cfg, live, pg, report, say)
        _recover(cfg, live, report)
        report.engine_tracebacks = engine.console(mark).count("Traceback")
        _check_database(report, url, live.test_id, live.sim_id, began, ended)
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        if live is not None:
            live.api.close()
            report.engine_exit = live.engine.stop()
            if report.failures():
                say("--- engine console (last 60 lines) ---")
                say("\n".join(live.engine.console().splitlines()[-60:]))
        pg.close()
        if cfg.keep_dir:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def _codes(probes: list[Probe], attr: str) -> str:
    counts = Counter(getattr(p, attr) for p in probes)
    return ", ".join(f"{k} x{n}" for k, n in sorted(counts.items(), key=lambda kv: str(kv[0]))) or "-"


def print_report(report: Report, say: Say = print) -> None:
    """The figures as a table."""
    outage, after = report.during("outage"), report.during("recovery")
    rows = report.rows_during_outage
    health_events = report.max_pending - sum(rows.values())
    lines = [
        ("outage length", f"{report.outage_s} s (asked {report.config.outage_s:g} s)"),
        ("engine alive throughout", str(all(p.engine_alive for p in report.probes) and report.engine_alive_at_end)),
        ("/api/health during outage", _codes(outage, "health") + f"; database: {_codes(outage, 'database')}"),
        ("/api/health after", _codes(after, "health")),
        ("/api/load-test/status during", _codes(outage, "load_test")),
        ("/proxy/orders/work during", _codes(outage, "proxy")),
        ("monitor-database alert during / after", f"{_codes(outage, 'db_alert')} / {_codes(after[-1:], 'db_alert')}"),
        ("writer.pending max", str(report.max_pending)),
        ("writer.dropped", str(report.dropped)),
        ("backlog written after restart in", f"{report.recovery_s} s (pending <= {TRICKLE} again)"),
        ("events buffered in the outage", f"metrics {rows.get('metrics', 0)}, load-test samples "
         f"{rows.get('load_test_samples', 0)}, logs {rows.get('logs', 0)}, breaker transitions "
         f"{rows.get('circuit_breaker_transitions', 0)}, health/progress updates ~{max(0, health_events)}"),
        ("log rows in the outage by source", ", ".join(f"{k} {v}" for k, v in
                                                      sorted(report.log_sources_during_outage.items())) or "-"),
        ("engine tracebacks (outage+after)", str(report.engine_tracebacks)),
        ("load test", f"{report.load_test_status}; samples {report.samples_found}/{report.samples_expected}, "
                      f"missing seconds {report.samples_missing or 'none'}"),
        ("simulation ending mid-outage", str(report.simulation_status)),
        ("inventory after a kill mid-outage", f"{report.inventory_instances} healthy instance(s)"),
        ("engine exit on SIGINT", str(report.engine_exit)),
    ]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        say(f"{k:<{width}}  {v}")
    say(f"\nmetric buckets in [outage start - {report.config.margin_s:g} s, outage end + {report.config.margin_s:g} s]")
    say(f"{'service':<10} {'bucket s':>8} {'expected':>8} {'found':>6} {'missing':>7} {'max gap s':>9}")
    for c in report.coverage:
        say(f"{c.service:<10} {c.bucket_s!s:>8} {c.expected:>8} {c.found:>6} {c.missing:>7} {c.max_gap_s!s:>9}")
    failures = report.failures()
    say("\n" + ("PASS: the engine survived the outage" if not failures else "FAIL:\n  " + "\n  ".join(failures)))


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the scenario, print the figures; 1 when something failed."""
    parser = argparse.ArgumentParser(prog="python -m bench.db_outage", description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=60.0, help="seconds PostgreSQL is stopped (default 60)")
    parser.add_argument("--margin", type=float, default=10.0, help="seconds checked before and after (default 10)")
    parser.add_argument("--collect-interval", type=float, default=5.0, help="metrics bucket, s (default 5)")
    parser.add_argument("--health-interval", type=float, default=5.0, help="health checks, s (default 5)")
    parser.add_argument("--rate", type=float, default=200.0, help="load-test requests/s (default 200)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (engine console, PG log)")
    args = parser.parse_args(argv)
    cfg = Config(outage_s=args.outage, margin_s=args.margin, collect_interval=args.collect_interval,
                 health_interval=args.health_interval, rate=args.rate, keep_dir=args.keep)
    report = run(cfg, say=lambda line: print(line, flush=True))
    print()
    print_report(report)
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
