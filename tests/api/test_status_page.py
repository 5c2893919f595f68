"""GET /status: the public status page, server-rendered HTML without a script, off by default."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contract.settings import Settings
from db import history
from db.alerting_models import IncidentNoteRow, IncidentRow
from db.models import Instance, Service, ServiceHealthTransition
from engine.api import create_app
from engine.api.status_page import CACHE_SECONDS, STATUS_PATH
from engine.clock import FakeClock
from engine.runtime import Runtime

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
EVIL = "<script>alert('x')</script> & \"quoted\""


@pytest.fixture
def clock() -> FakeClock:
    """The engine's clock, at NOW."""
    return FakeClock(NOW)


def status_client(settings: Settings, clock: FakeClock, **overrides: object) -> Iterator[FlaskClient]:
    """A client without a token on an engine with these settings."""
    rt = Runtime.open(settings.replace(**overrides), clock=clock)
    try:
        yield create_app(rt).test_client()
    finally:
        rt.stop()


@pytest.fixture
def page(clean_db, settings, clock) -> Iterator[FlaskClient]:
    """The status page on, every service shown."""
    yield from status_client(settings, clock, status_page_enabled=True, status_page_title="Acme <status>")


def at(days_ago: int, hours: float = 0.0) -> datetime:
    """A UTC time `days_ago` days before today, `hours` after its midnight."""
    return datetime.combine(TODAY - timedelta(days=days_ago), datetime.min.time(), tzinfo=UTC) + timedelta(hours=hours)


def seed(sessions: sessionmaker[Session]) -> uuid.UUID:
    """orders (healthy; state changes on 3 days of the 90 and one before them), payments (unhealthy, an open incident
    with two notes, the latest one hostile), billing (degraded, never observed); the id of the open incident."""
    open_id = uuid.uuid4()
    with sessions.begin() as s:
        orders = Service(name="orders", status="healthy", instances=[Instance(url="http://127.0.0.1:7101")])
        payments = Service(name="payments", status="unhealthy", instances=[Instance(url="http://127.0.0.1:7201")])
        s.add_all([orders, payments, Service(name="billing", status="degraded")])
        s.flush()
        changes = [
            (at(92), "unknown", "unhealthy"), (at(92, 12), "unhealthy", "unknown"),  # before the 90 days
            (at(89), "unknown", "degraded"), (at(89, 12), "degraded", "unknown"),  # degraded counts as up
            (at(1), "unknown", "healthy"), (at(1, 21.6), "healthy", "unhealthy"),  # down the last 2.4 h
            (at(0), "unhealthy", "healthy"), (at(0, 6), "healthy", "unknown"),  # up 6 h, then not observed
        ]
        for when, before, after in changes:
            s.add(ServiceHealthTransition(service_id=orders.id, from_state=before, to_state=after, at=when))
        s.add(IncidentRow(id=open_id, service_name="payments", status="open", title="payments is down",
                          severity="critical", started_at=NOW - timedelta(minutes=30)))
        s.add(IncidentRow(id=uuid.uuid4(), service_name="orders", status="resolved", title="orders was slow",
                          severity="critical", started_at=NOW - timedelta(days=2), resolved_at=NOW - timedelta(days=1)))
        s.flush()
        s.add(IncidentNoteRow(incident_id=open_id, at=NOW - timedelta(minutes=20), author="ops",
                              note="looking into it"))
        s.add(IncidentNoteRow(incident_id=open_id, at=NOW - timedelta(minutes=10), author="ops", note=EVIL))
    return open_id


def bars_of(html: str, service: str) -> list[tuple[str, str]]:
    """(class, title) of each day's bar of one service's card."""
    card = html.split(f'data-service="{service}"', 1)[1].split('<div class="card', 1)[0]
    return re.findall(r'<span class="bar (\w+)" title="([^"]*)"></span>', card)


def test_off_by_default_it_is_404(anon):
    r = anon.get(STATUS_PATH)
    assert r.status_code == 404


def test_off_explicitly_it_is_404(clean_db, settings, clock):
    for c in status_client(settings, clock, status_page_enabled=False):
        assert c.get(STATUS_PATH).status_code == 404


def test_the_page_needs_no_login_and_has_no_script(page, sessions):
    seed(sessions)
    r = page.get(STATUS_PATH)  # no Authorization header
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "<script" not in html.lower()
    assert " on" + "click" not in html.lower() and "javascript:" not in html.lower()
    assert r.headers["Cache-Control"] == f"public, max-age={CACHE_SECONDS}"
    # every service, by name, with its state in words
    assert re.findall(r'data-service="([^"]+)"', html) == ["billing", "orders", "payments"]
    states = dict(re.findall(r'<span class="name">([^<]+)</span><span class="state \w+">([^<]+)</span>', html))
    assert states == {"orders": "Operational", "payments": "Outage", "billing": "Degraded performance"}
    assert "Some services are down" in html


def test_ninety_bars_of_measured_uptime_per_day(page, sessions):
    seed(sessions)
    html = page.get(STATUS_PATH).get_data(as_text=True)
    orders = bars_of(html, "orders")
    assert len(orders) == 90
    # today: up for the 6 h observed; yesterday: up 21.6 h, down 2.4 h; 89 days ago: degraded 12 h; the rest unseen
    assert orders[-1] == ("ok", f"{TODAY:%Y-%m-%d}: 100.00 % uptime")
    assert orders[-2] == ("down", f"{TODAY - timedelta(days=1):%Y-%m-%d}: 90.00 % uptime")
    assert orders[0] == ("ok", f"{TODAY - timedelta(days=89):%Y-%m-%d}: 100.00 % uptime")
    assert [c for c, _ in orders[1:-2]] == ["none"] * 87
    assert all(t.endswith("no data") for _, t in orders[1:-2])
    # over the 90 days: 39.6 h up of 42 h observed (the day before them is not counted), cut, not rounded
    assert "94.28 % uptime</span>" in html
    # a service never observed: 90 grey bars and no figure, never 100 %
    billing = bars_of(html, "billing")
    assert len(billing) == 90 and {c for c, _ in billing} == {"none"}
    assert "no data</span>" in html


def test_the_days_are_the_health_historys_days(sessions):
    # one query for every service gives what db.history.daily_availability gives for each
    seed(sessions)
    grace = history.grace_for(1.0)
    first = TODAY - timedelta(days=95)
    with sessions() as s:
        ids = list(s.scalars(select(Service.id).order_by(Service.id)))
        together = history.services_daily_availability(s, ids, first, TODAY, NOW, grace)
        for sid in ids:
            alone = history.daily_availability(s, sid, first, TODAY, NOW, grace)
            assert together[sid] == {d: a for d, (a, _) in alone.items()}
    assert together[ids[0]][TODAY - timedelta(days=1)].down_s == pytest.approx(2.4 * 3600)


def test_open_incidents_with_their_latest_note_escaped(page, sessions):
    seed(sessions)
    html = page.get(STATUS_PATH).get_data(as_text=True)
    assert "payments: payments is down" in html
    assert "orders was slow" not in html  # resolved: not on the page
    assert "looking into it" not in html  # an older note
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in html
    assert "<script>" not in html
    assert "<title>Acme &lt;status&gt;</title>" in html and "<h1>Acme &lt;status&gt;</h1>" in html
    assert "Latest update · 2026-03-10 11:50 UTC" in html


def test_a_hostile_service_name_is_escaped(page, sessions):
    with sessions.begin() as s:
        s.add(Service(name='x"><img src=x>', status="healthy"))
    html = page.get(STATUS_PATH).get_data(as_text=True)
    assert "<img" not in html
    assert "x&quot;&gt;&lt;img src=x&gt;" in html


def test_only_the_chosen_services_in_their_order(clean_db, settings, clock, sessions):
    seed(sessions)
    for c in status_client(settings, clock, status_page_enabled=True,
                           status_page_services=("payments", "nosuch", "orders")):
        html = c.get(STATUS_PATH).get_data(as_text=True)
        assert re.findall(r'data-service="([^"]+)"', html) == ["payments", "orders"]
        assert "billing" not in html


def test_an_incident_of_a_service_not_shown_is_not_shown(clean_db, settings, clock, sessions):
    seed(sessions)
    for c in status_client(settings, clock, status_page_enabled=True, status_page_services=("orders",)):
        html = c.get(STATUS_PATH).get_data(as_text=True)
        assert "payments" not in html
        assert "Open incidents" not in html
        assert "All services operational" in html


def test_built_once_per_cache_period(page, sessions, clock):
    seed(sessions)
    first = page.get(STATUS_PATH).get_data(as_text=True)
    with sessions.begin() as s:
        s.query(Service).filter_by(name="payments").update({"status": "healthy"})
    assert page.get(STATUS_PATH).get_data(as_text=True) == first  # within the period: the page built before
    clock.advance(CACHE_SECONDS)
    again = page.get(STATUS_PATH).get_data(as_text=True)
    assert "Some services are down" not in again and "Some services are degraded" in again


def test_not_in_the_openapi_document(page):
    assert STATUS_PATH not in page.get("/api/openapi.json").json["paths"]


def test_no_services_yet(page):
    r = page.get(STATUS_PATH)
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "No services to show" in html and "No service is shown here yet." in html
