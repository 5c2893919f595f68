"""The Storage page under AppTest on the real partitioned metrics table, and the outage banner every page shows,
against a stub API on loopback answering /api/health (503 while the database is down, 200 when well, or nothing)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import streamlit as st
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from contract.responses import HealthOut
from contract.roles import Role
from db import partitions, storage_queries
from db.models import MetricMinute, MetricRow
from tests.conftest import free_port, wait_for
from tests.ui.conftest import chart_spec, metrics, open_page, texts
from ui import api, storage
from ui.storage import SHARD_COLOURS, HealthProbe, fmt_bytes, fmt_short, fmt_when, outage_banner

PAGE = "pages/storage.py"
RETENTION_DAYS = 10
AHEAD = 3
NOW = datetime(2021, 3, 10, 12, 0, tzinfo=UTC)  # the Storage page's now in the partition tests (ui.storage.now)


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """st.cache_data lives in this process across AppTest runs: each test starts without cached reads."""
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def metric(at: datetime, service: str = "orders") -> MetricRow:
    return MetricRow(service_name=service, timestamp=at, bucket_seconds=5, request_count=10, error_count=0,
                     instances_scraped=1)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def fresh_day(s: Session, day: date) -> None:
    """The day's partition, new: dropped first if an earlier test left it (its statistics with it)."""
    for p in partitions.list_partitions(s):
        if p.name == partitions.partition_name(day):
            partitions.drop(s, p)
    partitions.create_day(s, day)


def drop_day(sessions: sessionmaker[Session], day: date) -> None:
    with sessions.begin() as s:
        s.execute(text(f"DROP TABLE IF EXISTS {partitions.partition_name(day)}"))


def settle_statistics(sessions: sessionmaker[Session]) -> None:
    """End this database's other connections and wait until they are gone: a backend writes the statistics it
    holds back (up to 10 s) as it exits, so row estimates read afterwards move only with what the test writes.
    Earlier tests may leave idle pooled connections (cached engines, shared fixtures); their pools pre-ping and
    reconnect."""
    engine = sessions.kw["bind"]
    engine.dispose()
    others = ("FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
              "AND backend_type = 'client backend'")
    with engine.connect() as c:
        c.execute(text(f"SELECT pg_terminate_backend(pid) {others}"))

    def remaining() -> int:
        with engine.connect() as c:
            count: int = c.execute(text(f"SELECT count(*) {others}")).scalar_one()
            return count

    assert wait_for(lambda: remaining() == 0, 10.0), "another connection to the test database stays open"


@pytest.fixture
def stored(dash_env: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """At a fixed now (the page's too): today's and tomorrow's partitions, today's with 2 analysed rows; a new
    partition 5 days back with 3 rows never analysed nor counted; a row 40 days ahead in DEFAULT (analysed); the
    rollup analysed. Retention 10 days, 3 partitions ahead. Every row estimate is settled before the page reads."""
    monkeypatch.setenv("METRICS_RETENTION_DAYS", str(RETENTION_DAYS))
    monkeypatch.setenv("PARTITIONS_AHEAD", str(AHEAD))
    now = NOW
    monkeypatch.setattr(storage, "now", lambda: now)
    today, past, stray_day = now.date(), now.date() - timedelta(days=5), now.date() + timedelta(days=40)
    tomorrow = today + timedelta(days=1)
    oldest = midnight(past) + timedelta(hours=1)
    settle_statistics(dash_env)
    with dash_env.begin() as s:
        for day in (today, tomorrow, past):
            fresh_day(s, day)
        for p in partitions.list_partitions(s):  # the stray must find no day of its own
            if p.name == partitions.partition_name(stray_day):
                partitions.drop(s, p)
    with dash_env.begin() as s:
        s.add_all([metric(now - timedelta(seconds=10)), metric(now - timedelta(seconds=20))])
        s.add_all([metric(oldest + timedelta(hours=h)) for h in range(3)])
        s.add(metric(midnight(stray_day) + timedelta(hours=12)))
        s.execute(text("SELECT pg_stat_force_next_flush()"))  # the inserts are counted as this commits, not later
    with dash_env.begin() as s:
        for table in (partitions.partition_name(today), "metrics_default", "metrics_1m"):
            s.execute(text(f"ANALYZE {table}"))
        # the past day as after a statistics reset: rows there, neither counted nor analysed
        s.execute(text("SELECT pg_stat_reset_single_table_counters(CAST(:t AS regclass))"),
                  {"t": partitions.partition_name(past)})
    try:
        yield {"now": now, "today": today, "past": past, "oldest": oldest}
    finally:
        for day in (today, tomorrow, past):
            drop_day(dash_env, day)


def table_rows(at: Any) -> dict[str, dict[str, str]]:
    """The partition table: partition name -> its other columns."""
    [frame] = [d.value for d in at.dataframe if "partition" in d.value.columns]
    return {r["partition"]: {k: v for k, v in r.items() if k != "partition"} for r in frame.to_dict("records")}


def test_the_page_lists_partitions_with_status_rows_and_size(stored, dash_env):
    at = open_page(PAGE)
    assert not at.exception and not at.error
    assert texts(at.title) == ["Storage"]
    with dash_env() as s:
        listed = {p.name: p for p in partitions.list_partitions(s)}
    rows = table_rows(at)
    assert list(rows) == list(listed)  # oldest first, DEFAULT last, every one of them
    today = partitions.partition_name(stored["today"])
    assert rows[today] == {"from (UTC)": f"{stored['today']:%Y-%m-%d} 00:00",
                           "to (UTC)": f"{stored['today'] + timedelta(days=1):%Y-%m-%d} 00:00",
                           "status": "🟢 active", "rows (estimate)": "2", "size": fmt_bytes(listed[today].size_bytes)}
    past = partitions.partition_name(stored["past"])
    assert rows[past]["status"] == "🟣 sealed"  # 5 days back, kept for 10
    assert rows[past]["rows (estimate)"] == "n/a"  # 3 rows there, never analysed: unknown, not 0
    assert rows["metrics_default"] == {"from (UTC)": "n/a", "to (UTC)": "n/a", "status": "⚪ default",
                                       "rows (estimate)": "1",
                                       "size": fmt_bytes(listed["metrics_default"].size_bytes)}
    tomorrow = partitions.partition_name(stored["today"] + timedelta(days=1))
    assert rows[tomorrow]["status"] == "🔵 future"
    assert all(r["size"].endswith((" B", " kB", " MB")) for r in rows.values())


def test_the_figures_match_the_catalog(stored, dash_env, monkeypatch):
    read: dict[str, Any] = {}  # the catalog as the page read it: compared with what it shows, at the same moment
    list_partitions, rollup_usage = partitions.list_partitions, storage_queries.rollup_usage

    def listed_by_page(session: Session) -> list[partitions.Partition]:
        listed = read["partitions"] = list_partitions(session)
        return listed

    def rollup_by_page(session: Session) -> tuple[int | None, int]:
        rollup = read["rollup"] = rollup_usage(session)
        return rollup

    monkeypatch.setattr(partitions, "list_partitions", listed_by_page)
    monkeypatch.setattr(storage_queries, "rollup_usage", rollup_by_page)
    at = open_page(PAGE)
    assert not at.exception
    listed, (rollup_rows, rollup_size) = read["partitions"], read["rollup"]
    mine = (partitions.partition_name(stored["today"]), partitions.partition_name(stored["past"]), "metrics_default")
    assert {p.name: p.row_estimate for p in listed if p.name in mine} == dict(zip(mine, (2, None, 1), strict=True))
    known = sum(p.row_estimate for p in listed if p.row_estimate is not None)
    oldest_end = next(p.end for p in listed if p.end is not None)
    oldest_name = next(p.name for p in listed if p.end is not None)
    m = metrics(at)
    assert m == {
        "Partitions": str(len(listed)),
        "Total size": fmt_bytes(sum(p.size_bytes for p in listed)),
        "Rows (estimated)": f"≥ {known:,d}",  # the past day's rows are unknown: the total is a lower bound
        "Retention": "10 days",
        "Partitions ahead": "3",
        "Oldest data kept (UTC)": f"{stored['past']:%b %d} 01:00",
        "Next drop (UTC)": fmt_short(oldest_end + timedelta(days=RETENTION_DAYS)),
        "Rollup size": fmt_bytes(rollup_size),
        "Rollup rows (estimated)": str(rollup_rows),
    }
    if oldest_name == partitions.partition_name(stored["past"]):  # no older leftover: the exact day
        assert m["Next drop (UTC)"] == f"{stored['past'] + timedelta(days=1 + RETENTION_DAYS):%b %d} 00:00"
    with dash_env() as s:  # analysed and not written since: the estimate is the count (11:59, 3 hours back, DEFAULT)
        assert rollup_rows == s.scalar(select(func.count()).select_from(MetricMinute)) == 5
    helps = {x.label: x.proto.help for x in at.metric}
    assert "1 partition(s) hold rows PostgreSQL has not analysed yet" in helps["Rows (estimated)"]
    assert f"{len(listed) - 1} daily partition(s) and the DEFAULT one" in helps["Partitions"]
    assert helps["Oldest data kept (UTC)"] == (
        f"The oldest metrics row in any partition is from {stored['past']:%Y-%m-%d} 01:00 UTC; nothing older is kept.")
    assert f"passes the {RETENTION_DAYS}-day retention at {fmt_when(oldest_end + timedelta(days=RETENTION_DAYS))}" in (
        helps["Next drop (UTC)"])


def test_the_chart_shows_mb_per_day_in_the_status_colours(stored, dash_env):
    at = open_page(PAGE)
    spec = chart_spec(at, "storage-sizes")
    with dash_env() as s:
        listed = partitions.list_partitions(s)
    traces = {t["name"]: t for t in spec["data"]}
    assert {name: t["marker"]["color"] for name, t in traces.items()} == {
        name: SHARD_COLOURS[name] for name in ("active", "future", "sealed", "default")}
    assert traces["active"]["x"] == [f"{stored['today']:%Y-%m-%d}"]
    assert traces["default"]["x"] == ["DEFAULT"]
    today = next(p for p in listed if p.name == partitions.partition_name(stored["today"]))
    assert traces["active"]["y"] == [round(today.size_bytes / 1_000_000, 3)]
    layout = spec["layout"]
    assert layout["yaxis"]["title"]["text"] == "size (MB)" and layout["xaxis"]["type"] == "category"
    assert layout["xaxis"]["categoryarray"][-1] == "DEFAULT"


def test_a_day_past_the_retention_is_expired_and_its_drop_is_due(stored, dash_env):
    gone = stored["today"] - timedelta(days=RETENTION_DAYS + 2)
    with dash_env.begin() as s:
        fresh_day(s, gone)
    try:
        at = open_page(PAGE)
        assert not at.exception
        assert table_rows(at)[partitions.partition_name(gone)]["status"] == "🔴 expired"
        assert metrics(at)["Next drop (UTC)"] == "due now"
        traces = {t["name"]: t for t in chart_spec(at, "storage-sizes")["data"]}
        assert traces["expired"]["marker"]["color"] == SHARD_COLOURS["expired"]
    finally:
        drop_day(dash_env, gone)


def test_an_unreachable_database_is_reported_not_raised(dash_env, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    at = open_page(PAGE)
    assert not at.exception
    assert any("database is not reachable" in e for e in texts(at.error))
    assert not at.metric and not at.dataframe


def test_the_page_needs_a_login_and_comes_after_logs(dash_env):
    at = open_page(PAGE, role=None)
    assert not at.exception and texts(at.title) == ["Microservice Monitor"] and not at.metric
    app = open_page("app.py", role=Role.VIEWER)
    app.switch_page(PAGE).run()
    assert not app.exception and texts(app.title) == ["Storage"]
    with open("app.py") as f:
        source = f.read()
    assert source.index('"pages/logs.py"') < source.index(
        '"pages/storage.py", title="Storage", icon=":material/database:"')


# -- the outage banner: GET /api/health from a stub on loopback ----------------------------------------------------


class _HealthHandler(BaseHTTPRequestHandler):
    """Answers /api/health with the server's (status, body); every other path 404."""

    def do_GET(self) -> None:
        status, body = self.server.answer if self.path == "/api/health" else (404, {"error": "not found"})  # type: ignore[attr-defined]
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_api(dash_env: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[Callable[[int, dict[str, Any]], str]]:
    """Start a stub API answering /api/health with (status, body); API_URL points at it. Its URL."""
    servers: list[ThreadingHTTPServer] = []

    def serve(status: int, body: dict[str, Any]) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
        server.answer = (status, body)  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("API_URL", url)
        return url

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def health_body(*, database: str = "up", ok: bool = True, pending: int = 0, dropped: int = 0,
                last_success: datetime | None = None, last_error: str | None = None) -> dict[str, Any]:
    """An /api/health body as the engine writes it."""
    return {
        "status": "ok" if database == "up" and ok else "degraded",
        "engine": {"status": "up", "startedAt": "2026-01-01T00:00:00+00:00", "uptimeSeconds": 60.0, "services": 0},
        "database": {"embedded": False, "status": database, **({"error": "OperationalError"}
                                                                 if database == "down" else {})},
        "writer": {"databaseOk": ok, "pending": pending, "written": 100, "dropped": dropped, "rejected": 0,
                   "lastError": last_error, "lastSuccess": last_success.isoformat() if last_success else None,
                   "writeLatencyMs": {"windowSeconds": 60, "batches": 0, "p50": None, "p95": None, "max": None}},
        "simulations": {"active": 0},
    }


def test_a_database_outage_shows_the_error_banner_with_the_buffered_events(health_api):
    last = datetime.now(UTC) - timedelta(minutes=3)
    health_api(503, health_body(database="down", ok=False, pending=42, dropped=7, last_success=last,
                                last_error="OperationalError: connection refused\nmore lines"))
    at = open_page("app.py")
    assert not at.exception
    assert texts(at.title) == ["Overview"]  # the page still draws under the banner
    [banner] = texts(at.error)
    assert banner == (f"**Database unreachable** since {last:%H:%M:%S} UTC (the last successful write, 3 min ago) — "
                      "the engine keeps checking and routing; 42 events buffered (7 dropped).  \n"
                      "Last error: `OperationalError: connection refused`")
    assert not at.warning
    at.switch_page(PAGE).run()  # AppTest runs a switched-to page alone, so check the banner on app.py's own run
    assert not at.exception and texts(at.title) == ["Storage"]


def test_writes_refused_while_the_database_answers_show_the_banner_too(health_api):
    health_api(200, health_body(ok=False, pending=5, last_error="DataError: value too long"))
    at = open_page("app.py")
    [banner] = texts(at.error)
    assert banner.startswith("**Database refusing writes** since the engine started at 2026-01-01 00:00 UTC "
                             "(no write has succeeded yet) — the engine keeps checking and routing; 5 events "
                             "buffered (0 dropped).")


def test_a_healthy_engine_shows_no_banner(health_api):
    health_api(200, health_body(last_success=datetime.now(UTC)))
    at = open_page("app.py")
    assert not at.exception and texts(at.title) == ["Overview"]
    assert not at.error and not at.warning


def test_an_unreachable_api_shows_the_warning(dash_env, settings):
    at = open_page("app.py")  # dash_env's API_URL: nothing listens there
    assert not at.exception
    banner = next(w for w in texts(at.warning) if w.startswith("Engine API unreachable"))
    assert banner.startswith(f"Engine API unreachable at {settings.api_base_url}:")
    assert not at.error


def test_no_banner_before_the_login(health_api):
    health_api(503, health_body(database="down", ok=False, pending=42))
    at = open_page("app.py", role=None)  # the login form says itself when the API cannot be reached
    assert not at.exception and not at.error and not at.warning


@pytest.mark.parametrize(("probe", "level", "start"), [
    (HealthProbe(None, False, None, "no answer"), "warning", "Engine API unreachable at http://api.test:"),
    (HealthProbe(None, True, 500, "internal error\ntrace"), "warning",
     "Engine API at http://api.test answered its health check with HTTP 500: internal error"),
    (HealthProbe(None, True, None, "the answer is not JSON"), "warning",
     "Engine API at http://api.test answered its health check: the answer is not JSON"),
    (HealthProbe(None, True, 429, "too many requests"), None, None),
    (HealthProbe(health_body(database="down", ok=True, pending=0)), "error", "**Database unreachable** since"),
    (HealthProbe({**health_body(database="down"), "writer": {"lastSuccess": "yesterday", "pending": "many"}}),
     "error", "**Database unreachable** since the engine started at 00:00:00 UTC (no write has succeeded yet) — the "
              "engine keeps checking and routing; n/a events buffered (n/a dropped)."),
], ids=["unreachable", "http-500", "not-json", "rate-limited", "down-before-any-write-failed", "odd-values"])
def test_outage_banner(probe, level, start):
    banner = outage_banner(probe, "http://api.test", datetime(2026, 1, 1, 0, 5, tzinfo=UTC))
    if level is None:
        assert banner is None
    else:
        assert banner is not None and banner.level == level and banner.text.startswith(start), banner


def test_fmt_bytes():
    assert [fmt_bytes(n) for n in (None, 0, 999, 8192, 1_234_567, 5 * 10**9)] == [
        "n/a", "0 B", "999 B", "8.2 kB", "1.2 MB", "5.0 GB"]


def test_the_client_returns_the_report_of_a_503_and_raises_on_other_errors():
    body = health_body(database="down", ok=False, pending=42)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/health":
            return httpx.Response(503, json=body)
        return httpx.Response(503, json={"error": "database unavailable"})

    client = api.ApiClient("http://api.test", transport=httpx.MockTransport(handler))
    assert client.health() == HealthOut.model_validate(body)
    with pytest.raises(api.ApiCallFailed) as failed:
        client.system_metrics()  # elsewhere a 503 is still an error
    assert (failed.value.status, failed.value.error) == (503, "database unavailable")
