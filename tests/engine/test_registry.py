"""The registry's snapshot: a put keeps id order and replaces by id, a drop removes, a load reads the database."""

from __future__ import annotations

from sqlalchemy import select

from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec, spec_of


def spec(sid: int, name: str, *urls: str) -> ServiceSpec:
    return ServiceSpec(sid, name, "/health", None, 1, False,
                       tuple(InstanceSpec(sid * 100 + n, sid, u) for n, u in enumerate(urls)))


def test_put_keeps_id_order_and_replaces_by_id():
    r = Registry()
    for s in (spec(5, "e"), spec(2, "b"), spec(9, "i"), spec(7, "g")):
        r.put(s)
    assert [s.id for s in r.services()] == [2, 5, 7, 9]
    r.put(spec(5, "renamed", "http://127.0.0.1:1"))
    assert [s.name for s in r.services()] == ["b", "renamed", "g", "i"]
    renamed = r.by_name("renamed")
    assert r.by_name("e") is None and renamed is not None and renamed.instances[0].url == "http://127.0.0.1:1"


def test_drop_removes_only_that_id():
    r = Registry()
    r.replace((spec(1, "a"), spec(2, "b")))
    r.drop(1)
    r.drop(42)  # not there: nothing
    assert [s.name for s in r.services()] == ["b"] and r.by_name("a") is None


def test_load_reads_services_and_instances_by_id(sessions):
    from db.models import Instance, Service

    with sessions.begin() as s:
        s.add(Service(name="b", metrics_path="/metrics", weight=3, instances=[
            Instance(url="http://127.0.0.1:2", weight=2), Instance(url="http://127.0.0.1:1")]))
        s.add(Service(name="a"))
    r = Registry()
    with sessions() as s:
        r.load(s)
        b_row = s.scalars(select(Service).where(Service.name == "b")).one()
        assert r.by_name("b") == spec_of(b_row)
    b, a = r.services()
    assert (b.name, b.metrics_path, b.weight, [i.url for i in b.instances], [i.weight for i in b.instances]) == (
        "b", "/metrics", 3, ["http://127.0.0.1:2", "http://127.0.0.1:1"], [2, 1])
    assert (a.name, a.instances) == ("a", ())
