"""Experiments with scaling steps end to end: the demo fleet's managed processes scaled up and back down on schedule."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import running_fleet

pytestmark = pytest.mark.e2e


def test_scaling_steps_change_a_managed_services_instances(clean_db, settings):
    with running_fleet(settings) as (_rt, api):
        orders = next(s for s in api.get("/api/services").json() if s["name"] == "orders")
        count = len(orders["instances"])
        doc = {"name": "scale", "load": {"service": "orders", "stages": [{"durationS": 4, "targetRps": 10}],
                                         "startRps": 10, "requests": {"path": "/work?ms=1&cpu=0"}},
               "faults": [{"atS": 0.5, "service": "orders", "scaleTo": count + 1},
                          {"atS": 3, "service": "orders", "scaleTo": count}]}
        eid = api.post("/api/experiments", json=doc).json()["id"]
        run = api.post(f"/api/experiments/{eid}/run").json()
        done = wait_for(lambda: (d := api.get(f"/api/experiment-runs/{run['id']}").json())["status"] != "running"
                        and d, 30)
        steps = [(e["detail"]["from"], e["detail"]["to"], e["detail"]["error"]) for e in done["events"]
                 if e["kind"] == "scale"]
        assert steps == [(count, count + 1, None), (count + 1, count, None)], done["events"]
        assert done["verdict"] == "pass" and sum(s["failed"] for s in done["seconds"]) == 0
