"""The Chaos page and the Overview's simulation banner and chart spans under AppTest: seeded simulations from
PostgreSQL, and real ones started and stopped from the page through a live engine."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from contract.roles import Role
from db.models import Instance, MetricRow, Service, Simulation
from tests.conftest import free_port
from tests.ui.conftest import chart_spec, heatmap_rows, open_page, texts
from ui import chaos

PAGE = "pages/chaos.py"
START_KEYS = ("sf-start", "nl-start", "db-start", "ml-start")


def seed(sessions: sessionmaker[Session], kind: str, params: dict[str, Any], *, started: datetime, duration_s: float,
         status: str = "active", target: str | None = None, ended: datetime | None = None,
         effect: dict[str, Any] | None = None) -> int:
    """One simulations row, as the engine writes it; its id."""
    with sessions.begin() as s:
        row = Simulation(kind=kind, target=target, params={"duration": duration_s * 1000.0, **params}, status=status,
                         started_at=started, ends_at=started + timedelta(seconds=duration_s), ended_at=ended,
                         effect=effect)
        s.add(row)
        s.flush()
        return row.id


def iso(t: datetime) -> str:
    """A time as the charts draw it: naive UTC, ISO."""
    return t.astimezone(UTC).replace(tzinfo=None).isoformat()


def progress(at: AppTest) -> list[tuple[int, str]]:
    """(value %, text) of every st.progress."""
    return [(p.proto.value, p.proto.text) for p in at.get("progress")]


def history(at: AppTest) -> pd.DataFrame:
    [frame] = [d.value for d in at.dataframe if "effect" in d.value.columns]
    return frame




# -- seeded simulations (no API) -----------------------------------------------------------------------------


def test_active_simulations_count_down_with_a_stop_button_each(dash_env, monkeypatch):
    now = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)  # the page's "now": the countdown does not depend on render time
    monkeypatch.setattr(chaos, "now", lambda: now)
    leak = seed(dash_env, "memory-leak", {"rate": 2.0, "capMb": 512}, started=now - timedelta(seconds=10),
                duration_s=60)
    latency = seed(dash_env, "network-latency", {"latency": 200.0, "jitter": 50.0, "probability": 0.5,
                                                 "serviceName": None},
                   started=now - timedelta(seconds=75), duration_s=600)
    done = seed(dash_env, "database-overload", {"intensity": "low"}, started=now - timedelta(hours=1), duration_s=5,
                status="completed", ended=now - timedelta(minutes=59))
    at = open_page(PAGE)
    assert not at.exception
    assert progress(at) == [
        (16, f"#{leak} · Memory leak on the engine · 50 s left of 1 min"),  # 10 s of 60 done
        (12, f"#{latency} · Network latency on every service · 8 min 45 s left of 10 min"),  # 75 s of 600
    ]
    captions = texts(at.caption)
    assert "2 MB/s for 1 min, up to 120 MB (cap 512 MB)" in captions
    assert "+200 ms ± 50 ms on 50 % of requests for 10 min" in captions
    assert "Updated 04:05:06 UTC · refreshes every 1 s" in captions
    for key in (f"sim-stop-{leak}", f"sim-stop-{latency}", "sim-stop-all"):
        button = at.button(key=key)
        assert not button.proto.disabled, key
    assert at.button(key=f"sim-stop-{leak}").label == f"Stop #{leak}"
    assert not [b for b in at.button if b.key == f"sim-stop-{done}"]  # ended: nothing to stop
    assert history(at)[["id", "status", "effect"]].values.tolist() == [
        [done, "🟢 completed", "n/a"],
        [latency, "🔵 active", "in effect"],
        [leak, "🔵 active", "in effect"],
    ]

    # past its end with nobody ending it: the engine is not running, and the page says so
    with dash_env.begin() as s:
        s.execute(update(Simulation).where(Simulation.id == leak)
                  .values(started_at=now - timedelta(minutes=2), ends_at=now - timedelta(minutes=1)))
    at.run()
    assert progress(at)[0] == (100, f"#{leak} · Memory leak on the engine · past its end by 1 min: is the engine "
                                    "running? It marks the simulation interrupted at its next start.")


def test_history_says_what_each_simulation_did_in_words(dash_env):
    t0 = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    ended: dict[str, Any] = {"started": t0, "duration_s": 30, "status": "completed",
                             "ended": t0 + timedelta(seconds=30)}
    seed(dash_env, "service-failure", {"serviceName": "orders", "probability": 0.25, "statusCode": 503,
                                       "mode": "error"}, target="orders", **ended, effect={"requestsAffected": 503})
    seed(dash_env, "service-failure", {"serviceName": "orders", "probability": 1.0, "statusCode": None,
                                       "mode": "kill"}, target="orders", **ended,
         effect={"killed": "http://127.0.0.1:7103"})
    seed(dash_env, "network-latency", {"latency": 250.0, "jitter": 0.0, "probability": 1.0, "serviceName": "orders"},
         target="orders", started=t0, duration_s=60, status="stopped", ended=t0 + timedelta(seconds=12),
         effect={"requestsAffected": 1})
    seed(dash_env, "database-overload", {"intensity": "high"}, **ended, effect={
        "connections": 6, "lockHolder": True, "statements": 41,
        "writeLatencyMs": {"before": {"batches": 60, "p50": 4.0, "p95": 12.0, "max": 15.0},
                           "during": {"batches": 20, "p50": 300.0, "p95": 480.4, "max": 912.0}}})
    seed(dash_env, "memory-leak", {"rate": 10.0, "capMb": 512}, started=t0, duration_s=20, status="completed",
         ended=t0 + timedelta(seconds=20),
         effect={"heldMb": 200, "rssMbBefore": 80.2, "rssMbAtEnd": 278.4, "rssMbAfterRelease": 82.0})
    seed(dash_env, "memory-leak", {"rate": 10.0, "capMb": 512}, started=t0, duration_s=20, status="interrupted",
         ended=t0 + timedelta(seconds=5))
    seed(dash_env, "database-overload", {"intensity": "low"}, started=t0, duration_s=20, status="failed", ended=t0)
    at = open_page(PAGE)
    assert not at.exception
    rows = history(at)
    assert rows.columns.tolist() == ["id", "kind", "target", "parameters", "status", "effect", "started", "ended"]
    assert rows[["id", "kind", "target", "parameters", "status", "effect"]].values.tolist() == [
        [7, "Database overload", "the database", "low intensity for 20 s", "🔴 failed", "did not start"],
        [6, "Memory leak", "the engine", "10 MB/s for 20 s, up to 200 MB (cap 512 MB)", "🟠 interrupted",
         "not measured: the engine stopped while it was active"],
        [5, "Memory leak", "the engine", "10 MB/s for 20 s, up to 200 MB (cap 512 MB)", "🟢 completed",
         "held 200 MB, RSS 80 → 278 MB (+198 MB), 82 MB after release"],
        [4, "Database overload", "the database", "high intensity for 30 s", "🟢 completed",
         "write latency p95 12 → 480 ms (max 912 ms), 6 busy connections, 41 statements, held a lock on logs"],
        [3, "Network latency", "orders", "+250 ms on every request for 1 min", "🟠 stopped", "1 request affected"],
        [2, "Service failure", "orders", "kill one instance process (simulation lasts 30 s)", "🟢 completed",
         "killed http://127.0.0.1:7103"],
        [1, "Service failure", "orders", "HTTP 503 on 25 % of requests for 30 s", "🟢 completed",
         "503 requests affected"],
    ]
    assert rows["started"].iloc[-1] == pd.Timestamp(t0) and rows["ended"].iloc[4] == pd.Timestamp(t0 + timedelta(
        seconds=12))
    assert "No simulation is active." in texts(at.info)
    assert at.button(key="sim-stop-all").proto.disabled
    assert any(c.endswith("refreshes every 5 s") for c in texts(at.caption))
    assert all(d.proto.placeholder == "n/a" for d in at.dataframe)


def test_an_empty_page_says_so_and_a_service_failure_needs_a_service(dash_env):
    at = open_page(PAGE)
    assert not at.exception
    assert texts(at.title) == ["Chaos"]
    info = texts(at.info)
    assert "No simulation is active." in info and "No simulation has run yet." in info
    assert "No services registered yet: a service failure needs one. Register one on the Services page." in info
    start = at.button(key="sf-start")
    assert (start.proto.disabled, start.proto.help) == (True, "No services registered yet.")
    assert not any(at.button(key=k).proto.disabled for k in ("nl-start", "db-start", "ml-start"))
    assert at.selectbox(key="nl-service").options == ["every service"]


def test_a_viewer_sees_everything_and_can_start_or_stop_nothing(dash_env):
    with dash_env.begin() as s:
        s.add(Service(name="orders", instances=[Instance(url="http://127.0.0.1:7101")]))
    now = datetime.now(UTC)
    sim = seed(dash_env, "network-latency", {"latency": 100.0, "serviceName": "orders"}, target="orders",
               started=now, duration_s=60)
    viewer = open_page(PAGE, role=Role.VIEWER)
    assert not viewer.exception
    needs = "Needs the operator role; you are logged in as viewer."
    for key in (*START_KEYS, f"sim-stop-{sim}", "sim-stop-all"):
        button = viewer.button(key=key)
        assert (button.proto.disabled, button.proto.help) == (True, needs), key
    assert len(progress(viewer)) == 1 and len(history(viewer)) == 1  # reads stay available
    operator = open_page(PAGE)
    assert not any(operator.button(key=k).proto.disabled for k in (*START_KEYS, f"sim-stop-{sim}", "sim-stop-all"))
    assert operator.selectbox(key="sf-service").options == ["orders"]
    assert operator.selectbox(key="nl-service").options == ["every service", "orders"]


def test_the_page_needs_a_login_and_is_in_the_navigation_after_load_test(dash_env):
    at = open_page(PAGE, role=None)
    assert not at.exception
    assert texts(at.title) == ["Microservice Monitor"] and not at.dataframe
    app = open_page("app.py", role=Role.VIEWER)
    app.switch_page("pages/chaos.py").run()
    assert texts(app.title) == ["Chaos"]
    with open("app.py") as f:  # the order of the sidebar
        source = f.read()
    assert source.index('"pages/load_test.py"') < source.index('"pages/chaos.py", title="Chaos", '
                                                               'icon=":material/bolt:"') < source.index(
        '"pages/logs.py"')


# -- the Overview: a banner while one is active, spans on the charts ----------------------------------------------


def seed_metrics(sessions: sessionmaker[Session], now: datetime) -> None:
    """orders scraped every 30 s over the last 10 minutes."""
    with sessions.begin() as s:
        s.add(Service(name="orders", status="healthy", metrics_path="/metrics",
                      instances=[Instance(url="http://127.0.0.1:7101", status="healthy")]))
        for i in range(20):
            s.add(MetricRow(service_name="orders", timestamp=now - timedelta(seconds=30 * i), bucket_seconds=5,
                            request_count=0, error_count=0, cpu_percent=10.0 + i, memory_mb=64.0 + i,
                            instances_scraped=1))


def test_overview_banner_only_while_active_and_spans_on_the_charts(dash_env):
    now = datetime.now(UTC)
    seed_metrics(dash_env, now)
    old = seed(dash_env, "memory-leak", {"rate": 1.0}, started=now - timedelta(hours=2), duration_s=10,
               status="completed", ended=now - timedelta(hours=2) + timedelta(seconds=10))  # before the window
    failed = seed(dash_env, "database-overload", {"intensity": "low"}, started=now - timedelta(minutes=3),
                  duration_s=10, status="failed", ended=now - timedelta(minutes=3))  # never in effect
    early = seed(dash_env, "network-latency", {"latency": 100.0}, started=now - timedelta(minutes=30),
                 duration_s=1500, status="stopped", ended=now - timedelta(minutes=8))  # began before the window
    done = seed(dash_env, "service-failure", {"serviceName": "orders", "mode": "error"}, target="orders",
                started=now - timedelta(minutes=6), duration_s=60, status="completed",
                ended=now - timedelta(minutes=5))
    leak = seed(dash_env, "memory-leak", {"rate": 1.0, "capMb": 512}, started=now - timedelta(minutes=2),
                duration_s=300)
    at = open_page("app.py")  # the banner links to the Chaos page: a link needs the app's navigation
    assert not at.exception and texts(at.title) == ["Overview"]
    [banner] = [w for w in texts(at.warning) if "failure simulation" in w]
    assert re.fullmatch(r"1 failure simulation is active: memory leak on the engine \((3 min|2 min 5\d s) left\)\.",
                        banner), banner
    [link] = at.get("page_link")
    assert (link.proto.label, link.proto.page) == ("Open the Chaos page to watch or stop it", "chaos")

    chart = chart_spec(at, "chart-cpu_percent")
    spans = {s["name"]: (s["x0"], s["x1"]) for s in chart["layout"]["shapes"]}
    read_at = datetime.fromisoformat(spans[f"simulation {leak}"][1]).replace(tzinfo=UTC)  # the page's "now"
    assert now <= read_at <= datetime.now(UTC)
    window_start = iso(read_at - timedelta(minutes=15))
    assert spans == {
        f"simulation {early}": (window_start, iso(now - timedelta(minutes=8))),  # clipped to the window
        f"simulation {done}": (iso(now - timedelta(minutes=6)), iso(now - timedelta(minutes=5))),
        f"simulation {leak}": (iso(now - timedelta(minutes=2)), iso(read_at)),
    }
    assert f"simulation {old}" not in spans and f"simulation {failed}" not in spans
    labels = [a["text"] for a in chart["layout"]["annotations"]]
    assert labels == [f"#{early} latency · all", f"#{done} failure · orders", f"#{leak} memory leak"]
    assert chart["layout"]["xaxis"]["range"] == [window_start, iso(read_at)]  # the data and the spans, no more
    assert chart_spec(at, "chart-memory_mb")["layout"]["shapes"] == chart["layout"]["shapes"]
    assert {s["layer"] for s in chart["layout"]["shapes"]} == {"above"}  # over the heatmap's cells, not hidden
    # the metric cells are on the same naive-UTC axis as the spans: the newest is in now's 5 s bucket
    heat, [y] = chart["data"][0], heatmap_rows(at, "chart-cpu_percent").values()
    newest = datetime.fromisoformat(heat["x0"]) + timedelta(milliseconds=heat["dx"] * (len(y) - 1))
    assert heat["dx"] == 5000 and newest.replace(tzinfo=UTC) == datetime.fromtimestamp(now.timestamp() // 5 * 5, UTC)
    assert y[-1] == 10.0 and y[-7] == 11.0  # the rows of now and 30 s before

    with dash_env.begin() as s:  # it ends: the banner goes, its span stays, ending where it ended
        s.execute(update(Simulation).where(Simulation.id == leak)
                  .values(status="stopped", ended_at=now - timedelta(minutes=1)))
    at.run()
    assert not at.warning and not at.get("page_link")
    spans = {s["name"]: (s["x0"], s["x1"]) for s in chart_spec(at, "chart-cpu_percent")["layout"]["shapes"]}
    assert spans[f"simulation {leak}"] == (iso(now - timedelta(minutes=2)),
                                           iso(now - timedelta(minutes=1)))


# -- real simulations: the page's forms and buttons through a live engine --------------------------------------


def test_start_from_the_forms_then_stop_one_and_stop_all(live_api, dash_env):
    with dash_env.begin() as s:  # an external service: the engine has no process of it to kill
        s.add(Service(name="orders", instances=[Instance(url=f"http://127.0.0.1:{free_port()}")]))
    live_api.reload_registry()
    at = open_page(PAGE)
    assert not at.exception and not at.error

    # 1 MB/s: the engine (this test process) holds a few MB; 20 s so it is still active when stopped
    at.number_input(key="ml-rate").set_value(1.0)
    at.number_input(key="ml-duration").set_value(20_000)
    at.button(key="ml-start").click().run()
    assert not at.exception and not at.error
    assert texts(at.success) == ["Simulation #1 started: memory leak on the engine, 1 MB/s for 20 s, up to 20 MB "
                                 "(cap 512 MB)."]
    assert live_api.chaos.active_count() == 1
    [(_, text)] = progress(at)
    assert text.startswith("#1 · Memory leak on the engine · ") and text.endswith(" left of 20 s")
    assert any(c.endswith("refreshes every 1 s") for c in texts(at.caption))

    # refused by the engine: the error names the field, and nothing is started
    at.number_input(key="nl-duration").set_value(4_000_000)
    at.button(key="nl-start").click().run()
    [error] = texts(at.error)
    assert "(HTTP 422)" in error and "- duration: at most " in error and "(SIMULATION_MAX_MS)" in error
    at.radio(key="sf-mode").set_value("kill")
    at.button(key="sf-start").click().run()
    [error] = texts(at.error)
    assert "(HTTP 409)" in error and "service 'orders' is not managed" in error
    assert live_api.chaos.active_count() == 1

    at.number_input(key="nl-duration").set_value(20_000)
    at.number_input(key="nl-latency").set_value(150)
    at.button(key="nl-start").click().run()
    assert texts(at.success) == ["Simulation #2 started: network latency on every service, +150 ms on every request "
                                 "for 20 s."]
    assert [t.split(" · ")[:2] for _, t in progress(at)] == [
        ["#1", "Memory leak on the engine"], ["#2", "Network latency on every service"]]

    at.button(key="sim-stop-1").click().run()
    assert not at.exception
    [message] = texts(at.success)
    assert re.fullmatch(r"Simulation #1 stopped: memory leak on the engine, held \d+ MB, RSS [\d,]+ → [\d,]+ MB "
                        r"\([+-][\d,]+ MB\), [\d,]+ MB after release\.", message), message
    assert [t.split(" · ")[0] for _, t in progress(at)] == ["#2"]

    at.button(key="sim-stop-all").click().run()
    assert not at.exception
    assert texts(at.success) == ["1 simulation(s) stopped."]
    assert live_api.chaos.active_count() == 0
    assert not progress(at) and "No simulation is active." in texts(at.info)
    assert at.button(key="sim-stop-all").proto.disabled
    rows = history(at)
    assert rows["status"].tolist() == ["🟠 stopped", "🟠 stopped"]
    assert rows["effect"].iloc[0] in ("no request affected", "1 request affected") or rows["effect"].iloc[0].endswith(
        " requests affected")
    with dash_env() as s:
        stored = {r.id: (r.status, r.effect) for r in s.scalars(select(Simulation))}
    assert stored[1][0] == stored[2][0] == "stopped"
    assert stored[1][1] is not None and stored[1][1]["heldMb"] >= 0
