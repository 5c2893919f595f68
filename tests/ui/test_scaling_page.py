"""The Scaling page under AppTest: seeded services and scaling_events from PostgreSQL (figures, disabled buttons,
the instances chart and the decision history), and real scale-up, scale-down and autoscaler changes through a live
engine."""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from contract.roles import Role
from db.models import Instance, ScalingEvent, Service, Simulation
from tests.conftest import token_for
from tests.ui.conftest import chart_spec, chart_traces, metrics, open_page, texts
from ui.api import ApiClient

PAGE = "pages/scaling.py"
NEEDS = "Needs the operator role; you are logged in as viewer."
EXTERNAL = "External service: the engine does not run its instances, so it cannot add or remove any."
SETTINGS = {"metric": "inflight", "target": 5.0, "tolerance": 0.1, "up_window_s": 0.0, "down_window_s": 60.0,
            "max_step": 2}


def add_service(sessions: sessionmaker[Session], name: str, instances: int, *, managed: bool = True,
                low: int = 1, high: int = 10, autoscaler: dict[str, Any] | None = None,
                status: str = "healthy") -> int:
    """A services row with `instances` healthy instances; managed ones get a launch command. Its id."""
    with sessions.begin() as s:
        row = Service(name=name, status=status, managed=managed, min_instances=low, max_instances=high,
                      launch_command=f"demo --name {name} --port {{port}}" if managed else None,
                      autoscaler=autoscaler,
                      instances=[Instance(url=f"http://127.0.0.1:{7100 + 10 * len(name) + i}", status="healthy")
                                 for i in range(instances)])
        s.add(row)
        s.flush()
        return row.id


def add_event(sessions: sessionmaker[Session], service: str, at: datetime, before: int, after: int, reason: str,
              source: str = "manual", metric: str | None = None, value: float | None = None,
              target: float | None = None) -> None:
    """One scaling_events row, as the engine writes it."""
    direction = "up" if after > before else "down" if after < before else "none"
    with sessions.begin() as s:
        s.add(ScalingEvent(service_name=service, direction=direction, from_count=before, to_count=after, reason=reason,
                           timestamp=at, source=source, metric=metric, metric_value=value, target=target))


def buttons(at: AppTest, service_id: int) -> tuple[tuple[bool, str | None], tuple[bool, str | None]]:
    """(disabled, help) of a service's Scale up and Scale down buttons."""
    up, down = at.button(key=f"sc-up-{service_id}"), at.button(key=f"sc-down-{service_id}")
    return (up.proto.disabled, up.proto.help or None), (down.proto.disabled, down.proto.help or None)


def iso(t: datetime) -> str:
    """A time as the charts draw it: naive UTC, ISO."""
    return t.astimezone(UTC).replace(tzinfo=None).isoformat()




def history(at: AppTest) -> list[list[Any]]:
    """The decision table's rows without the time column."""
    [frame] = [d.value for d in at.dataframe if "reason" in d.value.columns]
    return [[None if pd.isna(v) else v for v in row] for row in frame.drop(columns=["time"]).values.tolist()]


def seed_events(sessions: sessionmaker[Session], now: datetime) -> None:
    """orders: 2 since before the window, up to 3 by the autoscaler, down to 2 by hand; payments: first seen at 2 in
    the window, up to 4, then found at 1 after an engine restart (no decision made that)."""
    add_event(sessions, "orders", now - timedelta(hours=2), 1, 2, "manual scale-up")
    add_event(sessions, "orders", now - timedelta(minutes=10), 2, 3,
              "requests in flight per instance 7.5 vs target 5: ceil(2 x 1.50) = 3", "autoscaler", "inflight", 7.5, 5.0)
    add_event(sessions, "orders", now - timedelta(minutes=5), 3, 3,
              "no change: requests in flight per instance 5.2 is within 10% of the target 5", "autoscaler",
              "inflight", 5.2, 5.0)
    add_event(sessions, "orders", now - timedelta(minutes=3), 3, 2, "manual scale-down")
    add_event(sessions, "payments", now - timedelta(minutes=8), 2, 2, "no change: CPU % per instance not measured",
              "autoscaler", "cpu", None, 50.0)
    add_event(sessions, "payments", now - timedelta(minutes=4), 2, 4, "CPU % per instance 120 vs target 50: "
              "ceil(2 x 2.40) = 5 (limited to max 4)", "autoscaler", "cpu", 120.0, 50.0)
    add_event(sessions, "payments", now - timedelta(minutes=2), 1, 1, "no change: CPU % per instance 40 is within "
              "25% of the target 50", "autoscaler", "cpu", 40.0, 50.0)


# -- seeded (no API: load is n/a, everything else from PostgreSQL) ----------------------------------------------


def test_services_show_counts_bounds_and_why_a_button_is_disabled(dash_env):
    orders = add_service(dash_env, "orders", 3, high=3)  # at its max
    payments = add_service(dash_env, "payments", 2, low=2, autoscaler=SETTINGS, status="degraded")  # at its min
    inventory = add_service(dash_env, "inventory", 2, high=6)
    ext = add_service(dash_env, "ext", 1, managed=False)
    at = open_page(PAGE)
    assert not at.exception and texts(at.title) == ["Scaling"]
    m = metrics(at)
    assert (m["Total instances"], m["Managed services"], m["Autoscaler on"], m["Requests in flight"]) == (
        "8", "3 / 4", "1", "n/a")
    shown = [(x.label, x.value) for x in at.metric][4:]
    assert shown == [
        ("Instances", "3"), ("In flight", "n/a"), ("Min to max", "1 to 3"),
        ("Instances", "2"), ("In flight", "n/a"), ("Min to max", "2 to 10"),
        ("Instances", "2"), ("In flight", "n/a"), ("Min to max", "1 to 6"),
        ("Instances", "1"), ("In flight", "n/a"), ("Min to max", "n/a"),
    ]
    markdown = texts(at.markdown)
    assert "**orders** :green-badge[healthy]" in markdown and "**payments** :orange-badge[degraded]" in markdown
    assert "**Autoscaler** target 5 in flight / instance ± 10 %" in markdown
    assert markdown.count("**Autoscaler** off") == 2 and "**Autoscaler** n/a" in markdown
    assert "external: monitored only" in texts(at.caption)
    assert buttons(at, orders) == (
        (True, "At its maximum of 3 instance(s): raise it in the autoscaler settings below."),
        (False, "Take one instance out of the balancer, let its requests in flight finish, then stop it."))
    assert buttons(at, payments)[1] == (
        True, "At its minimum of 2 instance(s): lower it in the autoscaler settings below.")
    assert buttons(at, payments)[0][0] is False
    assert [b[0] for b in buttons(at, inventory)] == [False, False]
    assert buttons(at, ext) == ((True, EXTERNAL), (True, EXTERNAL))
    assert any("load n/a: the engine's API does not answer" in c for c in texts(at.caption))

    # the autoscaler form: managed services only, with their settings, or the defaults when off
    assert at.selectbox(key="as-service").options == ["orders", "payments", "inventory"]
    assert at.toggle(key=f"as-enabled-{orders}").value is False
    assert at.number_input(key=f"as-scaleDownWindowS-{orders}").value == 300.0  # the HPA's default
    at.selectbox(key="as-service").set_value(payments).run()
    assert at.toggle(key=f"as-enabled-{payments}").value is True
    assert at.selectbox(key=f"as-metric-{payments}").value == "inflight"
    assert [at.number_input(key=f"as-{f}-{payments}").value for f in (
        "target", "tolerance", "scaleUpWindowS", "scaleDownWindowS", "maxStep", "minInstances", "maxInstances")] == [
        5.0, 10, 0.0, 60.0, 2, 2, 10]
    assert not at.button(key=f"as-save-{payments}").proto.disabled

    viewer = open_page(PAGE, role=Role.VIEWER)
    assert not viewer.exception
    assert buttons(viewer, inventory) == ((True, NEEDS), (True, NEEDS))
    assert buttons(viewer, ext) == ((True, EXTERNAL), (True, EXTERNAL))  # external whoever asks
    save = viewer.button(key=f"as-save-{orders}")
    assert (save.proto.disabled, save.proto.help) == (True, NEEDS)


def test_empty_page_says_so(dash_env):
    at = open_page(PAGE)
    assert not at.exception
    info = texts(at.info)
    assert any(i.startswith("No services registered yet.") for i in info)
    assert any(i.startswith("No managed service") for i in info)
    assert any(i.startswith("No scaling decision yet: a line starts") for i in info)
    assert "No scaling decision yet." in info
    assert not at.get("plotly_chart")


def test_chart_steps_follow_the_decisions_with_markers_and_spans(dash_env):
    now = datetime.now(UTC)
    for name in ("orders", "payments", "inventory"):
        add_service(dash_env, name, 2)
    seed_events(dash_env, now)
    with dash_env.begin() as s:
        s.add(Simulation(kind="network-latency", target="orders", params={"latency": 100.0, "duration": 60000.0},
                         status="completed", started_at=now - timedelta(minutes=7),
                         ends_at=now - timedelta(minutes=6), ended_at=now - timedelta(minutes=6)))
    at = open_page(PAGE)
    assert not at.exception
    # orders from the window's start at the count its decision 2 h ago left; payments from its first decision
    # in the window; inventory never scaled: no line
    assert chart_traces(at, "sc-chart") == {
        "orders": [2, 3, 2, 2], "orders scaling": [3, 2],
        "payments": [2, 4, 1, 1], "payments scaling": [4],
    }
    spec = chart_spec(at, "sc-chart")
    traces = {t["name"]: t for t in spec["data"]}
    read_at = datetime.fromisoformat(traces["orders"]["x"][-1]).replace(tzinfo=UTC)  # the page's "now"
    assert now <= read_at <= datetime.now(UTC)
    assert traces["orders"]["x"] == [iso(read_at - timedelta(minutes=15)), iso(now - timedelta(minutes=10)),
                                     iso(now - timedelta(minutes=3)), iso(read_at)]
    assert traces["orders"]["line"]["shape"] == "hv"
    assert spec["layout"]["xaxis"]["range"] == [iso(read_at - timedelta(minutes=15)), iso(read_at)]  # the window
    assert traces["payments"]["x"][:3] == [iso(now - timedelta(minutes=8)), iso(now - timedelta(minutes=4)),
                                           iso(now - timedelta(minutes=2))]
    marks = traces["orders scaling"]
    assert marks["x"] == [iso(now - timedelta(minutes=10)), iso(now - timedelta(minutes=3))]
    assert marks["marker"]["symbol"] == ["triangle-up", "triangle-down"]
    assert marks["customdata"] == [
        ["▲ up", 2, 3, "autoscaler", "requests in flight per instance 7.5 vs target 5: ceil(2 x 1.50) = 3",
         "7.5 vs target 5 in flight / instance"],
        ["▼ down", 3, 2, "manual", "manual scale-down", ""],
    ]
    assert traces["payments scaling"]["marker"]["symbol"] == ["triangle-up"]
    assert [s["name"] for s in spec["layout"]["shapes"]] == ["simulation 1"] * 2  # across both rows
    assert [a["text"] for a in spec["layout"]["annotations"]] == ["#1 latency · orders"]
    assert spec["layout"]["yaxis"]["title"]["text"] == "orders"

    at.button_group(key="sc-window").set_value("24 h").run()  # the decision 2 h ago is in the window now
    assert chart_traces(at, "sc-chart")["orders"] == [1, 2, 3, 2, 2]
    start = datetime.fromisoformat(chart_spec(at, "sc-chart")["layout"]["xaxis"]["range"][0]).replace(tzinfo=UTC)
    assert abs(start - (now - timedelta(hours=2, minutes=12))) < timedelta(seconds=5)  # a tenth before the first


def test_history_newest_first_filtered_with_csv(dash_env, monkeypatch):
    now = datetime.now(UTC)
    for name in ("orders", "payments"):
        add_service(dash_env, name, 2)
    seed_events(dash_env, now)
    stored: list[bytes] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def keep(self, data, mimetype, kind, filename=None):  # the CSV the download button serves
        stored.append(data)
        return original(self, data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    at = open_page(PAGE)
    assert not at.exception
    [frame] = [d.value for d in at.dataframe if "reason" in d.value.columns]
    assert frame.columns.tolist() == ["time", "service", "source", "direction", "instances", "metric vs target",
                                      "reason"]
    assert history(at) == [
        ["payments", "autoscaler", "no change", "1 → 1", "40 % vs target 50 % CPU",
         "no change: CPU % per instance 40 is within 25% of the target 50"],
        ["orders", "manual", "▼ down", "3 → 2", None, "manual scale-down"],
        ["payments", "autoscaler", "▲ up", "2 → 4", "120 % vs target 50 % CPU",
         "CPU % per instance 120 vs target 50: ceil(2 x 2.40) = 5 (limited to max 4)"],
        ["orders", "autoscaler", "no change", "3 → 3", "5.2 vs target 5 in flight / instance",
         "no change: requests in flight per instance 5.2 is within 10% of the target 5"],
        ["payments", "autoscaler", "no change", "2 → 2", "n/a vs target 50 % CPU",
         "no change: CPU % per instance not measured"],
        ["orders", "autoscaler", "▲ up", "2 → 3", "7.5 vs target 5 in flight / instance",
         "requests in flight per instance 7.5 vs target 5: ceil(2 x 1.50) = 3"],
        ["orders", "manual", "▲ up", "1 → 2", None, "manual scale-up"],
    ]
    assert all(d.proto.placeholder == "n/a" for d in at.dataframe)
    rows = list(csv.DictReader(io.StringIO(stored[-1].decode())))
    assert len(rows) == 7 and rows[0]["service_name"] == "payments" and rows[0]["metric_value"] == "40.0"
    assert datetime.fromisoformat(rows[-1]["timestamp"]) == now - timedelta(hours=2)

    at.selectbox(key="sc-service").set_value("orders").run()
    assert [r[:4] for r in history(at)] == [
        ["orders", "manual", "▼ down", "3 → 2"], ["orders", "autoscaler", "no change", "3 → 3"],
        ["orders", "autoscaler", "▲ up", "2 → 3"], ["orders", "manual", "▲ up", "1 → 2"]]
    at.toggle(key="sc-changes").set_value(True).run()
    assert [r[3] for r in history(at)] == ["3 → 2", "2 → 3", "1 → 2"]
    assert any(c.startswith("The last 3 decision(s), newest first") for c in texts(at.caption))


def test_the_page_needs_a_login_and_comes_after_chaos(dash_env):
    at = open_page(PAGE, role=None)
    assert not at.exception and texts(at.title) == ["Microservice Monitor"]
    app = open_page("app.py", role=Role.VIEWER)
    app.switch_page("pages/scaling.py").run()
    assert not app.exception and texts(app.title) == ["Scaling"]
    with open("app.py") as f:
        source = f.read()
    assert source.index('"pages/chaos.py"') < source.index(
        '"pages/scaling.py", title="Scaling", icon=":material/stacks:"') < source.index('"pages/logs.py"')


# -- a live engine: real processes started and stopped from the page -------------------------------------------


def count_in_db(sessions: sessionmaker[Session], service_id: int) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Instance).where(Instance.service_id == service_id)) or 0)


def test_scale_up_and_down_from_the_page_and_save_the_autoscaler(live_api, dash_env):
    with dash_env.begin() as s:
        row = Service(name="orders", managed=True, min_instances=1, max_instances=2, health_path="/health",
                      launch_command=(f"{sys.executable} -m engine.fleet.demo_service"
                                      " --name orders --port {port} --seed 1"))
        s.add(row)
        s.flush()
        sid = row.id
    live_api.fleet.start(sid)
    at = open_page(PAGE)
    assert not at.exception and not at.error
    assert metrics(at)["Requests in flight"] == "0"  # load comes from the engine now
    assert [b[0] for b in buttons(at, sid)] == [False, True]  # at its min of 1

    at.button(key=f"sc-up-{sid}").click().run()
    assert not at.exception
    assert texts(at.success) == ["orders scaled up: 1 → 2 instance(s)."]
    assert count_in_db(dash_env, sid) == 2 and len(live_api.fleet.running("orders")) == 2
    assert buttons(at, sid)[0] == (True, "At its maximum of 2 instance(s): raise it in the autoscaler settings below.")
    assert buttons(at, sid)[1][0] is False

    at.button(key=f"sc-down-{sid}").click().run()
    assert not at.exception
    assert texts(at.success) == ["orders scaled down: 2 → 1 instance(s)."]
    assert count_in_db(dash_env, sid) == 1 and len(live_api.fleet.running("orders")) == 1
    assert [r[:4] for r in history(at)] == [["orders", "manual", "▼ down", "2 → 1"],
                                            ["orders", "manual", "▲ up", "1 → 2"]]
    assert chart_traces(at, "sc-chart")["orders"] == [1, 2, 1, 1]

    # the autoscaler form: a refused change names the field and changes nothing
    at.number_input(key=f"as-minInstances-{sid}").set_value(3)
    at.button(key=f"as-save-{sid}").click().run()
    [error] = texts(at.error)
    assert "(HTTP 422)" in error and "- minInstances: must not exceed maxInstances" in error
    at.toggle(key=f"as-enabled-{sid}").set_value(True)
    at.selectbox(key=f"as-metric-{sid}").set_value("cpu")
    at.number_input(key=f"as-target-{sid}").set_value(60.0)
    at.number_input(key=f"as-tolerance-{sid}").set_value(20)
    at.number_input(key=f"as-scaleDownWindowS-{sid}").set_value(30.0)
    at.number_input(key=f"as-maxStep-{sid}").set_value(2)
    at.number_input(key=f"as-minInstances-{sid}").set_value(1)
    at.number_input(key=f"as-maxInstances-{sid}").set_value(4)
    at.button(key=f"as-save-{sid}").click().run()
    assert not at.exception and not at.error
    assert texts(at.success) == ["Autoscaler of orders on: target 60 % CPU ± 20 %, scale-up window 0 s, scale-down "
                                 "window 30 s, max step 2, 1 to 4 instances."]
    answer = ApiClient(live_api.settings.api_base_url, token=token_for(Role.VIEWER)).request("GET", "/api/scaling")
    [service] = answer["services"]
    assert (service["minInstances"], service["maxInstances"], service["canScaleUp"]) == (1, 4, True)
    assert service["autoscaler"] == {"metric": "cpu", "target": 60.0, "tolerance": 0.2, "scaleUpWindowS": 0.0,
                                     "scaleDownWindowS": 30.0, "maxStep": 2}
    assert "**Autoscaler** target 60 % CPU ± 20 %" in texts(at.markdown)
    assert at.number_input(key=f"as-maxInstances-{sid}").value == 4  # the form shows what is stored now
