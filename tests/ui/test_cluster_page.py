"""The Cluster page under AppTest on a real database: a live leader, a live follower, a stopped and a gone engine,
with states, the leader's term and heartbeat ages as the membership rows say."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import streamlit as st
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from db.session import conninfo
from engine.cluster import EngineIdentity, Leadership, Membership
from tests.conftest import wait_for
from tests.ui.conftest import metrics, open_page, texts
from ui.cluster import fmt_age

PAGE = "pages/cluster.py"
LEASE_S = 2.0


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """st.cache_data lives in this process across AppTest runs: each test starts without cached reads."""
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def member(dsn: str, name: str) -> Membership:
    m = Membership(dsn, EngineIdentity(uuid.uuid4(), name, "host-" + name, 4000 + len(name),
                                       f"http://{name}:5000", f"http://{name}:5080"),
                   Leadership(LEASE_S, time.monotonic), heartbeat_s=0.5)
    m.start()
    return m


def table(at: Any) -> dict[str, dict[str, str]]:
    [frame] = [d.value for d in at.dataframe if "engine" in d.value.columns]
    return {r["engine"]: r for r in frame.to_dict("records")}


def test_the_page_lists_live_stopped_and_gone_engines_and_the_leader(dash_env: sessionmaker[Session],
                                                                     database_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CLUSTER_LEASE_S", str(LEASE_S))
    monkeypatch.setenv("CLUSTER_HEARTBEAT_S", "0.5")
    dsn = conninfo(database_url)
    leader, follower, stopped, gone = (member(dsn, n) for n in ("alpha", "beta", "gamma", "delta"))
    try:
        stopped.stop()
        gone.abandon()
        with dash_env.begin() as s:  # its last heartbeat 45 s ago, as a crash that long back leaves it
            s.execute(text("UPDATE engines SET heartbeat_at = now() - interval '45 seconds' WHERE id = :i"),
                      {"i": gone.identity.id})
        assert wait_for(lambda: leader.leadership.is_leader, 2)
        at = open_page(PAGE)
        assert not at.exception and not at.error
        assert texts(at.title) == ["Cluster"]
        rows = table(at)
        assert set(rows) == {"alpha", "beta", "gamma", "delta"}
        term = leader.leadership.term
        assert {n: (r["state"], r["leader"]) for n, r in rows.items()} == {
            "alpha": ("🟢 live", f"👑 term {term}"), "beta": ("🟢 live", ""), "gamma": ("⚪ stopped", ""),
            "delta": ("🔴 gone", "")}
        assert rows["delta"]["heartbeat age"] in ("45 s", "46 s") and rows["delta"]["stopped (UTC)"] == ""
        assert rows["alpha"]["heartbeat age"].endswith(" s") and float(rows["alpha"]["heartbeat age"][:-2]) < 1.5
        assert (rows["beta"]["host"], rows["beta"]["API"], rows["beta"]["traffic"], rows["beta"]["id"]) == (
            "host-beta", "http://beta:5000", "http://beta:5080", str(follower.identity.id))
        assert rows["gamma"]["stopped (UTC)"].endswith("UTC")
        assert metrics(at) == {"Live engines": "2", "Stopped or gone": "2", "Leader": "alpha",
                               "Fencing term": str(term), "Lease": "2 s"}
    finally:
        for m in (leader, follower):
            m.stop()


def test_with_no_engine_the_page_says_none_registered(dash_env: sessionmaker[Session]):
    at = open_page(PAGE)
    assert not at.exception and not at.error
    assert metrics(at)["Leader"] == "n/a" and metrics(at)["Live engines"] == "0"
    assert any("No engine has registered" in t for t in texts(at.info))


@pytest.mark.parametrize(("seconds", "shown"), [(0.42, "0.4 s"), (12.4, "12 s"), (185, "3 min"), (7300, "2 h"),
                                                (200_000, "2 d")], ids=["sub-10s", "seconds", "minutes", "hours",
                                                                        "days"])
def test_heartbeat_ages_are_shown_in_one_unit(seconds: float, shown: str):
    assert fmt_age(seconds) == shown
