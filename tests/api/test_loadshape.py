"""Staged rates, rotating requests and route keys over the API: each wrong field named (422, no row), the shape
stored and read back, and the engine's single entry validate_shape, wait and on_second.

A started runtime (engine loop, no HTTP server) behind the Flask test client, against a recording echo server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from contract.errors import ValidationFailed
from contract.loadtest import LoadTestStart
from db.models import LoadTest
from engine.loadtest.generator import Tally, planned
from tests.api.conftest import started_client
from tests.e2e.echo import EchoServer, echo_servers


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    with echo_servers("e0") as (server,):
        yield server


@pytest.fixture
def live(clean_db, settings, echo):
    with started_client(settings, echo.url, max_rps=500, max_duration=120, max_users=50) as pair:
        yield pair


def rows(rt):
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(LoadTest))


BASE = {"concurrentUsers": 5, "targetService": "orders"}
STAGED = {**BASE, "startRps": 10, "stages": [{"durationS": 1, "targetRps": 30}]}
ONE = {"method": "POST", "path": "/a?x=1", "headers": {"X-A": "1"}, "body": "{}"}
BAD = {
    "rate-with-stages": ({**STAGED, "requestsPerSecond": 10}, "requestsPerSecond"),
    "duration-with-stages": ({**STAGED, "duration": 1}, "duration"),
    "no-rate-no-stages": ({**BASE, "duration": 1}, "requestsPerSecond"),
    "no-duration-no-stages": ({**BASE, "requestsPerSecond": 10}, "duration"),
    "start-without-stages": ({**BASE, "requestsPerSecond": 10, "duration": 1, "startRps": 5}, "startRps"),
    "stages-empty": ({**BASE, "stages": []}, "stages"),
    "stages-101": ({**BASE, "stages": [{"durationS": 1, "targetRps": 1}] * 101}, "stages"),
    "stages-all-zero": ({**BASE, "stages": [{"durationS": 1, "targetRps": 0}]}, "stages"),
    "stage-over-max": ({**BASE, "stages": [{"durationS": 1, "targetRps": 501}]}, "stages"),
    "start-over-max": ({**STAGED, "startRps": 501}, "stages"),
    "stages-too-long": ({**BASE, "stages": [{"durationS": 100, "targetRps": 1}] * 2}, "stages"),
    "stage-duration-zero": ({**BASE, "stages": [{"durationS": 0, "targetRps": 1}]}, "stages[0].durationS"),
    "stage-target-negative": ({**BASE, "stages": [{"durationS": 1, "targetRps": -1}]}, "stages[0].targetRps"),
    "stage-extra": ({**BASE, "stages": [{"durationS": 1, "targetRps": 1, "x": 1}]}, "stages[0].x"),
    "start-negative": ({**STAGED, "startRps": -1}, "startRps"),
    "path-with-requests": ({**STAGED, "requests": [ONE], "path": "/"}, "path"),
    "method-with-requests": ({**STAGED, "requests": [ONE], "method": "GET"}, "method"),
    "requests-empty": ({**STAGED, "requests": []}, "requests"),
    "requests-101": ({**STAGED, "requests": [ONE] * 101}, "requests"),
    "request-method": ({**STAGED, "requests": [{**ONE, "method": "BREW"}]}, "requests[0].method"),
    "request-path": ({**STAGED, "requests": [{**ONE, "path": "a b"}]}, "requests[0].path"),
    "request-body-type": ({**STAGED, "requests": [{**ONE, "body": 5}]}, "requests[0].body"),
    "request-51-headers": ({**STAGED, "requests": [{**ONE, "headers": {f"X-{i}": "v" for i in range(51)}}]},
                           "requests[0].headers"),
    "header-name": ({**STAGED, "requests": [{**ONE, "headers": {"X A": "v"}}]}, "requests[0].headers"),
    "header-crlf": ({**STAGED, "requests": [{**ONE, "headers": {"X-A": "v\r\nX-B: w"}}]}, "requests[0].headers"),
    "header-nul": ({**STAGED, "requests": [ONE, {**ONE, "headers": {"X-A": "v\0"}}]}, "requests[1].headers"),
    "header-big": ({**STAGED, "requests": [{**ONE, "headers": {"X-A": "v" * 8193}}]}, "requests[0].headers"),
    "header-value-type": ({**STAGED, "requests": [{**ONE, "headers": {"X-A": 1}}]}, "requests[0].headers"),
    "route-key-placeholder": ({**STAGED, "routeKey": "u-{id}"}, "routeKey"),
    "route-key-modulus": ({**STAGED, "routeKey": "{n%0}"}, "routeKey"),
    "route-key-brace": ({**STAGED, "routeKey": "u-{n"}, "routeKey"),
    "route-key-crlf": ({**STAGED, "routeKey": "u\r\n{n}"}, "routeKey"),
    "route-key-twice": ({**STAGED, "routeKey": "{n}", "requests": [{**ONE, "headers": {"x-route-key": "a"}}]},
                        "requests[0].headers"),
}
FRAMING = ["Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "TE", "Trailer", "Keep-Alive",
           "Proxy-Authorization", "proxy-connection", "content-length"]


def refused(c, body):
    r = c.post("/api/load-test/start", json=body)
    assert r.status_code == 422, r.json
    return r.json["details"]


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_shape_names_the_field_and_creates_no_row(live, case):
    rt, c = live
    body, field = BAD[case]
    details = refused(c, body)
    assert field in [d["field"] for d in details], details
    if "over-max" in case or "too-long" in case:
        assert "MAX_" in details[0]["message"]
    assert rows(rt) == 0


@pytest.mark.parametrize("name", FRAMING)
def test_framing_and_hop_by_hop_headers_are_refused_by_name(live, name):
    rt, c = live
    details = refused(c, {**STAGED, "requests": [{**ONE, "headers": {"X-Ok": "1", name: "v"}}]})
    assert [d["field"] for d in details] == ["requests[0].headers"] and name in details[0]["message"]
    assert rows(rt) == 0


def test_a_body_over_64_kib_as_utf_8_is_refused():
    # the API's own request limit (64 KiB) stops such a body before validation: the contract's check is the bound
    ok = {**STAGED, "requests": [{**ONE, "body": "é" * 32768}]}
    assert LoadTestStart.model_validate(ok).requests[0].body == "é" * 32768  # type: ignore[index]
    with pytest.raises(ValidationError) as bad:
        LoadTestStart.model_validate({**STAGED, "requests": [{**ONE, "body": "é" * 32769}]})
    assert [e["loc"] for e in bad.value.errors()] == [("requests", 0, "body")]


def test_todays_body_is_answered_without_the_shape_fields(live):
    rt, c = live
    r = c.post("/api/load-test/start", json={**BASE, "requestsPerSecond": 20, "duration": 0.5})
    assert r.status_code == 202
    assert not {"startRps", "stages", "requests", "routeKey"} & set(r.json)
    done = rt.loadtests.wait(r.json["id"], 10)
    assert done.status == "completed" and done.totalRequests == 10
    stored = c.get(f"/api/load-tests/{r.json['id']}").json
    assert not {"startRps", "stages", "requests", "routeKey"} & set(stored) and len(stored["samples"]) >= 1
    with rt.sessions() as s:
        assert s.get(LoadTest, r.json["id"]).shape is None


def test_a_staged_run_reports_derived_rate_and_duration_and_stores_its_shape(live, echo):
    rt, c = live
    body = {**BASE, "startRps": 10, "stages": [{"durationS": 1, "targetRps": 30}, {"durationS": 0.5, "targetRps": 30}],
            "requests": [ONE, {"path": "/b"}], "routeKey": "k{n%4}"}
    r = c.post("/api/load-test/start", json=body)
    assert r.status_code == 202, r.json
    assert (r.json["requestsPerSecond"], r.json["duration"], r.json["path"], r.json["method"]) == (30, 1.5, "/a?x=1",
                                                                                                   "POST")
    shape = {"startRps": 10.0, "stages": body["stages"], "routeKey": "k{n%4}",
             "requests": [ONE, {"method": "GET", "path": "/b", "headers": {}, "body": None}]}
    assert {k: r.json[k] for k in shape} == shape
    done = rt.loadtests.wait(r.json["id"], 10)
    assert done.status == "completed" and done.totalRequests == 35  # 20 in the ramp, 15 at 30/s
    rt.writer.flush()
    for stored in (c.get("/api/load-tests").json[0], c.get(f"/api/load-tests/{r.json['id']}").json):
        assert {k: stored[k] for k in shape} == shape
    assert sorted(s.header("X-Route-Key")[0] for s in echo.seen[-35:]) == sorted(f"k{n % 4}" for n in range(35))


def test_validate_shape_is_the_one_entry_and_on_second_sees_every_recorded_second(live):
    rt, _ = live
    manager = rt.loadtests
    with pytest.raises(ValidationFailed) as bad:
        manager.validate_shape(LoadTestStart.model_validate({**STAGED, "targetService": "nope"}))
    assert [d["field"] for d in bad.value.details] == ["targetService"]
    req = manager.validate_shape(LoadTestStart.model_validate({**BASE, "startRps": 0, "stages": [
        {"durationS": 1, "targetRps": 40}, {"durationS": 1, "targetRps": 0}]}))
    assert (req.rate, req.duration_s, req.start_rps, req.ramp) == (40, 2, 0, ((1, 40), (1, 0)))
    seen: list[tuple[int, int]] = []

    def on_second(second: int, tally: Tally) -> None:
        assert tally.corrected.count == tally.ok + tally.failed
        seen.append((second, tally.sent))

    out = manager.start(req, on_second)
    done = manager.wait(out.id, 10)  # type: ignore[arg-type]
    assert done.status == "completed" and done.sent == 40
    assert sum(n for _, n in seen) == 40 and [s for s, _ in seen] == list(range(1, len(seen) + 1))
    for second, sent in seen[:2]:
        assert abs(sent - planned(0, req.stages, second)) <= 1
