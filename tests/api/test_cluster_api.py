"""GET /api/cluster over a real database: this engine registered, live and leading, a stopped one listed as such."""

from __future__ import annotations

import uuid

from contract.roles import Role
from engine.cluster import EngineIdentity, Leadership, Membership
from engine.runtime import Runtime
from tests.conftest import token_for


def test_an_engine_lists_itself_live_and_leading_and_a_stopped_one_gone(anon, runtime: Runtime):
    assert anon.get("/api/cluster").status_code == 401
    viewer = {"Authorization": "Bearer " + token_for(Role.VIEWER)}
    runtime.membership.start()  # what start() does first, without the loop and its jobs
    other = Membership(runtime.database.conninfo, EngineIdentity(uuid.uuid4(), "other:5001", "other", 42,
                                                                 "http://other:5001", "http://other:5081"),
                       Leadership(runtime.settings.cluster_lease_s, lambda: 0.0), heartbeat_s=1.0)
    other.start()
    other.stop()
    r = anon.get("/api/cluster", headers=viewer)
    assert r.status_code == 200, r.json
    body = r.json
    me = str(runtime.engine_id)
    assert (body["engineId"], body["leaderId"], body["leaseSeconds"]) == (me, me, runtime.settings.cluster_lease_s)
    assert body["term"] == runtime.leadership.term and body["term"] >= 1
    rows = {e["id"]: e for e in body["engines"]}
    assert set(rows) == {me, str(other.identity.id)}
    mine = rows[me]
    assert (mine["live"], mine["leader"], mine["stoppedAt"]) == (True, True, None)
    assert mine["pid"] == runtime.membership.identity.pid
    assert mine["apiUrl"] == f"http://{runtime.settings.api_host}:{runtime.settings.api_port}"
    gone = rows[str(other.identity.id)]
    assert (gone["live"], gone["leader"], gone["name"], gone["proxyUrl"]) == (False, False, "other:5001",
                                                                               "http://other:5081")
    assert gone["stoppedAt"] is not None and gone["heartbeatAt"] <= gone["stoppedAt"]
