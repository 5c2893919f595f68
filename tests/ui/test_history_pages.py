"""Health history on the dashboard: uptime and heartbeat on the Overview's cards, check latency and daily uptime
bars on the Services page; figures from a seeded PostgreSQL, the heartbeat from a real engine."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from contract.events import CheckRollupEvent
from contract.history import CheckOut
from contract.roles import Role
from contract.states import HealthState
from db import history
from db.alerting_models import IncidentRow
from db.models import Instance, Service, ServiceHealthTransition
from tests.conftest import token_for, wait_for
from tests.e2e.echo import echo_servers
from tests.ui.conftest import chart_spec, open_page, plotly_array
from ui import history as ui_history
from ui.client import ApiClient
from ui.format import STATUS_COLOURS


def seed(sessions: sessionmaker[Session], start: datetime, *, latency_from: datetime | None = None) -> int:
    """orders, observed for 10 minutes from start: down 60 s at 7 min, unknown (engine stopped) at 10 min; its
    instance checked 12 times a minute then, latency 10 + minute ms (max 2 ms more). Returns the service id."""
    with sessions.begin() as s:
        service = Service(name="orders", status="healthy", instances=[Instance(url="http://127.0.0.1:7101")])
        s.add(service)
        s.flush()
        sid, iid = service.id, service.instances[0].id
        for at, a, b in ((0, "unknown", "healthy"), (420, "healthy", "unhealthy"), (480, "unhealthy", "healthy"),
                         (600, "healthy", "unknown")):
            s.add(ServiceHealthTransition(service_id=sid, from_state=a, to_state=b, at=start + timedelta(seconds=at)))
        minutes = [start + timedelta(minutes=m) for m in range(10)]
        if latency_from is not None:
            minutes += [latency_from + timedelta(minutes=m) for m in range(3)]
        history.upsert_rollups(s, [CheckRollupEvent(sid, iid, m, 12, 12, 0, 0, 12, 12 * (10.0 + k % 10),
                                                    12.0 + k % 10) for k, m in enumerate(minutes)])
    return sid


def test_overview_cards_show_uptime_and_say_when_the_heartbeat_is_unknown(dash_env):
    seed(dash_env, datetime.now(UTC) - timedelta(minutes=30))
    at = open_page("pages/overview.py")
    (grid,) = [h.proto.body for h in at.get("html")]
    assert "Uptime 24 h <b>90.00 %</b> · 30 d <b>90.00 %</b>" in grid  # 60 s down of 600 s observed
    assert "Heartbeat n/a" in grid  # no API answers here


def test_overview_cards_count_each_services_open_incidents_and_name_the_newest(dash_env):
    seed(dash_env, datetime.now(UTC) - timedelta(minutes=30))
    now = datetime.now(UTC)
    with dash_env.begin() as s:
        s.add(Service(name="payments", instances=[Instance(url="http://127.0.0.1:7103")]))
        for title, status, ago in (("older <b>", "open", 20), ("newest down", "open", 5), ("closed", "resolved", 1)):
            s.add(IncidentRow(id=uuid.uuid4(), service_name="orders", status=status, title=title, severity="critical",
                              started_at=now - timedelta(minutes=ago)))
    (grid,) = [h.proto.body for h in open_page("pages/overview.py").get("html")]
    orders, payments = grid.split('data-service="payments"')
    assert "<b>2</b> open incidents: newest down" in orders
    assert "open incident" not in payments


def test_overview_uptime_is_na_when_nothing_was_observed(dash_env):
    with dash_env.begin() as s:
        s.add(Service(name="fresh", instances=[Instance(url="http://127.0.0.1:7102")]))
    (grid,) = [h.proto.body for h in open_page("pages/overview.py").get("html")]
    assert "Uptime 24 h <b>n/a</b> · 30 d <b>n/a</b>" in grid


def test_overview_heartbeat_shows_the_engines_latest_checks(live_api):
    with echo_servers("orders") as (server,):
        client = ApiClient(f"http://127.0.0.1:{live_api.settings.api_port}", token=token_for(Role.OPERATOR))
        sid = client.create_service({"name": "orders", "url": server.url}).id
        assert wait_for(lambda: len(client.recent_checks(sid, 3)) == 3, 10)
        at = open_page("pages/overview.py")
        shown = len(client.recent_checks(sid, 1000))  # at least what the page read
    (grid,) = [h.proto.body for h in at.get("html")]
    cells = re.findall(r'class="mm-beat(?: mm-beat-(\w+))?"', grid)
    assert len(cells) == 40
    beats = [c for c in cells if c]
    assert 3 <= len(beats) <= min(shown, 40) and set(beats) == {"healthy"}
    assert cells[-len(beats):] == beats  # the newest on the right, empty cells on the left


def test_services_page_shows_check_latency_and_90_daily_bars(dash_env):
    now = datetime.now(UTC)
    # noon two days ago: more than 24 h ago at any time of day, so outside the latency chart's last 24 h
    noon = datetime.combine(now.date() - timedelta(days=2), datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    seed(dash_env, noon, latency_from=now.replace(second=0, microsecond=0) - timedelta(minutes=5))
    at = open_page("pages/services.py")
    assert not at.exception
    bars = chart_spec(at, "history-daily")["data"][0]
    colours = bars["marker"]["color"]
    assert len(colours) == 90 and len(bars["x"]) == 90
    assert bars["x"][-3] == noon.date().isoformat()
    assert bars["customdata"][-3] == [90.0, 120]  # 540 s up of 600 s observed; 10 minutes of 12 checks
    assert colours[-3] == STATUS_COLOURS["unhealthy"]
    assert colours[:-3] == [ui_history.UNKNOWN_COLOUR] * 87  # nothing observed: grey, not low
    assert "90.00 %" in chart_spec(at, "history-daily")["layout"]["title"]["text"]
    layout = chart_spec(at, "history-latency")["layout"]
    assert (layout["xaxis"]["title"]["text"], layout["yaxis"]["title"]["text"]) == ("time (UTC)", "check latency (ms)")
    latency = {t["name"]: plotly_array(t["y"]) for t in chart_spec(at, "history-latency")["data"]}
    assert latency == {"avg": [10.0, 11.0, 12.0], "max": [12.0, 13.0, 14.0]}  # the last 24 h: the 3 recent minutes


def test_heartbeat_cells_and_uptime_format():
    checks = [CheckOut(instanceId=1, at=f"2026-01-01T00:00:{s:02d}+00:00", state=state, latencyMs=lat,
                       statusCode=None, error=err)
              for s, state, lat, err in ((10, HealthState.UNHEALTHY, None, "refused"), (5, HealthState.HEALTHY, 3.0,
                                                                                       None))]
    html = ui_history.heartbeat_html(checks, 4)
    assert re.findall(r'class="mm-beat(?: mm-beat-(\w+))?"', html) == ["", "", "healthy", "unhealthy"]
    assert "refused" in html and "3.0 ms" in html
    assert [ui_history.fmt_uptime(v) for v in (99.999, 100.0, 90.0, None)] == ["99.99 %", "100.00 %", "90.00 %",
                                                                             "n/a"]
    assert [ui_history.bar_colour(v) for v in (None, 99.95, 99.5, 50.0)] == [
        ui_history.UNKNOWN_COLOUR, STATUS_COLOURS["healthy"], STATUS_COLOURS["degraded"], STATUS_COLOURS["unhealthy"]]
