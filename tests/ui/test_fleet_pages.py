"""Overview and Services at fleet size: counts per status, filters by status and name, the table's rows (AppTest on
a real PostgreSQL); a small fleet keeps its cards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from db.models import Instance, Service
from tests.ui.conftest import metrics, open_page
from ui.fleet import CARD_LIMIT

STATUS_OF = ("healthy", "healthy", "unhealthy", "degraded", "unknown")  # by service number modulo 5


def seed(sessions: sessionmaker[Session], services: int, instances: int = 2) -> None:
    """svc-000.. with statuses cycling through STATUS_OF; instance k of a service is healthy when k is even."""
    now = datetime.now(UTC)
    with sessions.begin() as s:
        for n in range(services):
            s.add(Service(name=f"svc-{n:03d}", status=STATUS_OF[n % 5], instances=[
                Instance(url=f"http://127.0.1.{n + 1}:{9000 + k}", status="healthy" if k % 2 == 0 else "unhealthy",
                         latency_ms=1.5, last_health_check=now - timedelta(seconds=3))
                for k in range(instances)]))


def expected(services: int, status: str | None = None, part: str | None = None) -> list[str]:
    names = [f"svc-{n:03d}" for n in range(services)]
    return [name for n, name in enumerate(names)
            if (status is None or STATUS_OF[n % 5] == status) and (part is None or part in name)]


def test_a_small_fleet_keeps_its_cards(dash_env):
    seed(dash_env, CARD_LIMIT)
    at = open_page("pages/overview.py")
    assert not at.exception
    (grid,) = [h.proto.body for h in at.get("html")]
    assert grid.count('class="mm-card ') == CARD_LIMIT
    assert not [d for d in at.dataframe if d.proto.id.endswith("overview-services")]
    assert not at.multiselect  # no filters either


def test_a_large_fleet_is_a_table_worst_first_with_counts(dash_env):
    seed(dash_env, 40)
    at = open_page("pages/overview.py")
    assert not at.exception
    assert not [h for h in at.get("html") if "mm-card " in h.proto.body]
    m = metrics(at)
    assert (m["🟢 healthy"], m["🔴 unhealthy"], m["🟠 degraded"], m["⚪ unknown"]) == ("16", "8", "8", "8")
    assert m["Healthy instances"] == "40 / 80"
    (table,) = at.dataframe
    frame = table.value
    assert len(frame) == 40
    # worst first: unhealthy, degraded, unknown, healthy; by name within a status
    order = [*expected(40, "unhealthy"), *expected(40, "degraded"), *expected(40, "unknown"), *expected(40, "healthy")]
    assert frame["service"].tolist() == order
    first = frame.iloc[0]
    assert (first["status"], first["instances"], first["healthy"], first["kind"]) == ("🔴 unhealthy", 2, 1, "external")


@pytest.mark.parametrize(
    ("statuses", "name", "status_filter", "part"),
    [(["degraded"], "", "degraded", None), ([], "01", None, "01"), (["healthy"], "SVC-00", "healthy", "svc-00"),
     (["unhealthy"], "nothing", "unhealthy", "nothing")],
    ids=["status", "name", "status-and-name-any-case", "no-match"],
)
def test_overview_filters_pick_the_rows(dash_env, statuses, name, status_filter, part):
    seed(dash_env, 40)
    at = open_page("pages/overview.py")
    at.multiselect(key="overview-status").set_value(statuses)
    at.text_input(key="overview-name").input(name)
    at.run()
    assert not at.exception
    got = at.dataframe[0].value["service"].tolist()
    assert sorted(got) == expected(40, status_filter, part)
    assert metrics(at)["🟢 healthy"] == "16"  # the counts are the whole fleet's, whatever the filter


def test_services_page_filters_instances_by_their_service(dash_env):
    seed(dash_env, 30, instances=3)
    at = open_page("pages/services.py")
    assert not at.exception
    frame = at.dataframe[0].value
    assert len(frame) == 90
    assert metrics(at)["🔴 unhealthy"] == "6"
    at.multiselect(key="services-status").set_value(["unhealthy"])
    at.text_input(key="services-name").input("svc-01")
    at.run()
    frame = at.dataframe[0].value
    names = expected(30, "unhealthy", "svc-01")
    assert names == ["svc-012", "svc-017"]
    assert frame["service"].tolist() == [n for n in names for _ in range(3)]
    assert frame["instance URL"].tolist()[:3] == ["http://127.0.1.13:9000", "http://127.0.1.13:9001",
                                                  "http://127.0.1.13:9002"]
    assert frame["instance status"].tolist()[:3] == ["🟢 healthy", "🔴 unhealthy", "🟢 healthy"]
    assert any("2 of 30 services match" in c.value for c in at.caption)


def test_services_page_lists_a_service_without_instances(dash_env):
    seed(dash_env, 1)
    with dash_env.begin() as s:
        s.execute(text("DELETE FROM instances"))
    frame = open_page("pages/services.py").dataframe[0].value
    assert frame["service"].tolist() == ["svc-000"] and frame["instance URL"].isna().all()
