"""A managed service renamed over the API keeps its running processes, now under the new name: scaled, replaced and
stopped as the renamed service's (no process left behind under the old name)."""

from __future__ import annotations

import sys

import httpx
import psutil
from sqlalchemy import select

from contract.roles import Role
from contract.settings import Settings
from db.models import Instance
from engine.api import create_app
from engine.runtime import Runtime
from tests.conftest import token_for, wait_for


def test_a_renamed_managed_service_keeps_its_processes_under_the_new_name(clean_db, settings: Settings):
    rt = Runtime.open(settings)
    rt.start(app=create_app(rt))
    try:
        command = f"{sys.executable} -m engine.fleet.demo_service --name shop --port {{port}} --seed 7"
        with httpx.Client(base_url=settings.api_base_url, trust_env=False, timeout=30,
                          headers={"Authorization": "Bearer " + token_for(Role.ADMIN, "admin")}) as admin:
            created = admin.post("/api/services", json={"name": "shop", "launchCommand": command, "minInstances": 1,
                                                       "maxInstances": 3})
            assert created.status_code == 201, created.text
            service_id = created.json()["id"]
            [first] = rt.fleet.running("shop")

            renamed = admin.put(f"/api/services/{service_id}", json={"name": "store"})
            assert renamed.status_code == 200, renamed.text
            assert rt.fleet.running("shop") == []
            assert [i.process.pid for i in rt.fleet.running("store")] == [first.process.pid]  # not restarted

            up = admin.post(f"/api/services/{service_id}/scale-up")
            assert up.status_code == 200, up.text
            assert up.json()["newInstanceCount"] == 2
            assert len(rt.fleet.running("store")) == 2
            down = admin.post(f"/api/services/{service_id}/scale-down")
            assert down.status_code == 200, down.text
            assert down.json()["newInstanceCount"] == 1
            assert [i.process.pid for i in rt.fleet.running("store")] == [first.process.pid]

            # an instance that dies is replaced as the renamed service's
            first.process.kill()
            replaced = wait_for(lambda: [i for i in rt.fleet.running("store")
                                         if i is not first and i.instance_id is not None], timeout=20)
            assert len(replaced) == 1, rt.fleet.instances
            with rt.sessions() as session:
                urls = set(session.scalars(select(Instance.url).where(Instance.service_id == service_id)))
            assert urls == {replaced[0].url}

            pids = [i.process.pid for i in rt.fleet.instances]
            deleted = admin.delete(f"/api/services/{service_id}")
            assert deleted.status_code == 200, deleted.text
        assert rt.fleet.instances == []
        assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    finally:
        rt.stop()
