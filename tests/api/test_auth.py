"""Authorization matrix over every declared route (refusals and reads on one shared engine, each action on its
own), the routes the app really registers, logins, rate limits, body limits, secrets, the password hash cost."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from contract.roles import Role
from db.models import Base, LogEntry, User
from engine.api import create_app, declared_routes
from engine.api.openapi import openapi_path
from engine.api.routing import Route
from engine.clock import FakeClock
from engine.runtime import Runtime
from engine.security.tokens import TokenIssuer
from engine.security.users import STRONG, HashCost, passwords
from tests.conftest import CHEAP_HASHING, TEST_JWT_SECRET, settings_for, token_for, truncate_all

ROUTES = declared_routes()
ROUTES_IDS = [f"{r.method} {r.rule}" for r in ROUTES]
# a body each mutating route accepts, so an allowed role gets past validation
BODIES = {
    ("POST", "/api/services"): {"name": "matrix", "url": "http://127.0.0.1:7999"},
    ("PUT", "/api/services/<int:service_id>"): {"weight": 2},
    ("POST", "/api/users"): {"username": "matrixuser", "password": "long-enough-pw", "role": "viewer"},
    ("PUT", "/api/users/<int:user_id>"): {"role": "operator"},
    ("PUT", "/api/auth/password"): {"currentPassword": "not-the-password", "newPassword": "long-enough-pw"},
    ("POST", "/api/auth/token"): {"username": "admin", "password": "admin-password-for-tests"},
    ("PUT", "/api/load-balancer"): {"algorithm": "p2c"},
    ("PUT", "/api/circuit-breakers/<service_name>"): {"failureThreshold": 3},
    ("PUT", "/api/services/<int:service_id>/slo"): {"availabilityTarget": 99.5},
    ("POST", "/api/incidents/<incident_id>/acknowledge"): {"note": "matrix"},
    ("POST", "/api/alert-channels"): {"name": "matrix", "type": "webhook", "config": {"url": "http://127.0.0.1:9/"}},
    ("PUT", "/api/alert-channels/<int:channel_id>"): {"name": "matrix", "type": "webhook",
                                                      "config": {"url": "http://127.0.0.1:9/"}},
    ("POST", "/api/alert-rules"): {"name": "matrix", "kind": "service-down"},
    ("PUT", "/api/alert-rules/<int:rule_id>"): {"name": "matrix", "kind": "service-down"},
    ("POST", "/api/silences"): {"service": "matrix", "startsAt": "2030-01-01T00:00:00Z",
                                "endsAt": "2030-01-02T00:00:00Z", "comment": "matrix"},
}


def path_of(rule):
    return re.sub(r"<(?:\w+:)?\w+>", "1", rule)


def expired_token():
    past = FakeClock(datetime(2020, 1, 1, tzinfo=UTC))
    return TokenIssuer(TEST_JWT_SECRET, 60, past).issue("test-admin", Role.ADMIN, 0)[0]


def forged_token():
    return TokenIssuer("another-secret-of-enough-length-xx", 3600, FakeClock(datetime.now(UTC))).issue(
        "test-admin", Role.ADMIN, 0)[0]


def none_alg_token():
    return jwt.encode({"sub": "x", "role": "admin", "exp": 2**31}, key=None, algorithm="none")


def call(anon, route, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return anon.open(path_of(route.rule), method=route.method, json=BODIES.get((route.method, route.rule)),
                     headers=headers)


# the policy, written independently of the route declarations: None = public
POLICY = {
    "GET /api/health": None,
    "GET /api/openapi.json": None,
    "GET /metrics": None,  # Prometheus scrapes without a token
    "POST /api/auth/token": None,
    "GET /api/overview": Role.VIEWER,
    "GET /api/metrics": Role.VIEWER,
    "GET /api/shards": Role.VIEWER,
    "GET /api/cluster": Role.VIEWER,
    "GET /api/services": Role.VIEWER,
    "GET /api/services/<int:service_id>": Role.VIEWER,
    "GET /api/logs": Role.VIEWER,
    "POST /api/services": Role.OPERATOR,
    "PUT /api/services/<int:service_id>": Role.OPERATOR,
    "DELETE /api/services/<int:service_id>": Role.OPERATOR,
    "DELETE /api/logs": Role.OPERATOR,
    "GET /api/load-balancer": Role.VIEWER,
    "PUT /api/load-balancer": Role.OPERATOR,
    "GET /api/circuit-breakers": Role.VIEWER,
    "PUT /api/circuit-breakers/<service_name>": Role.OPERATOR,
    "POST /api/circuit-breakers/<service_name>/reset": Role.OPERATOR,
    "POST /api/circuit-breakers/reset-all": Role.OPERATOR,
    **{f"{m} /proxy/<service_name>/<path:path>": Role.OPERATOR
       for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")},
    "POST /api/load-test/start": Role.OPERATOR,
    "POST /api/load-test/stop": Role.OPERATOR,
    "GET /api/load-test/status": Role.VIEWER,
    "GET /api/load-tests": Role.VIEWER,
    "GET /api/load-tests/<int:test_id>": Role.VIEWER,
    "POST /api/experiments": Role.OPERATOR,
    "GET /api/experiments": Role.VIEWER,
    "GET /api/experiments/<int:experiment_id>": Role.VIEWER,
    "PUT /api/experiments/<int:experiment_id>": Role.OPERATOR,
    "DELETE /api/experiments/<int:experiment_id>": Role.OPERATOR,
    "POST /api/experiments/<int:experiment_id>/run": Role.OPERATOR,
    "GET /api/experiment-runs": Role.VIEWER,
    "GET /api/experiment-runs/<int:run_id>": Role.VIEWER,
    "POST /api/experiment-runs/<int:run_id>/stop": Role.OPERATOR,
    "GET /api/experiment-runs/<int:run_id>/report": Role.VIEWER,
    "GET /api/experiment-runs/<int:run_id>/compare/<int:other_id>": Role.VIEWER,
    "POST /api/simulate/service-failure": Role.OPERATOR,
    "POST /api/simulate/network-latency": Role.OPERATOR,
    "POST /api/simulate/database-overload": Role.OPERATOR,
    "POST /api/simulate/memory-leak": Role.OPERATOR,
    "POST /api/simulate/stop-all": Role.OPERATOR,
    "POST /api/simulations/<int:simulation_id>/stop": Role.OPERATOR,
    "GET /api/simulations": Role.VIEWER,
    "POST /api/services/<int:service_id>/scale-up": Role.OPERATOR,
    "POST /api/services/<int:service_id>/scale-down": Role.OPERATOR,
    "PUT /api/services/<int:service_id>/autoscaler": Role.OPERATOR,
    "GET /api/scaling": Role.VIEWER,
    "GET /api/scaling/events": Role.VIEWER,
    "GET /api/services/<int:service_id>/uptime": Role.VIEWER,
    "GET /api/services/<int:service_id>/uptime/daily": Role.VIEWER,
    "GET /api/services/<int:service_id>/checks": Role.VIEWER,
    "GET /api/services/<int:service_id>/check-latency": Role.VIEWER,
    "GET /api/incidents": Role.VIEWER,
    "GET /api/incidents/stats": Role.VIEWER,
    "GET /api/incidents/<incident_id>": Role.VIEWER,
    "POST /api/incidents/<incident_id>/acknowledge": Role.OPERATOR,
    "GET /api/services/<int:service_id>/slo": Role.VIEWER,
    "PUT /api/services/<int:service_id>/slo": Role.OPERATOR,
    "DELETE /api/services/<int:service_id>/slo": Role.OPERATOR,
    "GET /api/users": Role.ADMIN,
    "POST /api/users": Role.ADMIN,
    "PUT /api/users/<int:user_id>": Role.ADMIN,
    "DELETE /api/users/<int:user_id>": Role.ADMIN,
    "POST /api/auth/logout": Role.VIEWER,
    "PUT /api/auth/password": Role.VIEWER,
    "GET /api/alert-channels": Role.OPERATOR,
    "GET /api/alert-channels/<int:channel_id>": Role.OPERATOR,
    "POST /api/alert-channels": Role.ADMIN,
    "PUT /api/alert-channels/<int:channel_id>": Role.ADMIN,
    "DELETE /api/alert-channels/<int:channel_id>": Role.ADMIN,
    "POST /api/alert-channels/<int:channel_id>/test": Role.ADMIN,
    "GET /api/deliveries": Role.VIEWER,
    "POST /api/alert-rules": Role.OPERATOR,
    "GET /api/alert-rules": Role.VIEWER,
    "GET /api/alert-rules/<int:rule_id>": Role.VIEWER,
    "PUT /api/alert-rules/<int:rule_id>": Role.OPERATOR,
    "DELETE /api/alert-rules/<int:rule_id>": Role.OPERATOR,
    "GET /api/alerts": Role.VIEWER,
    "POST /api/silences": Role.OPERATOR,
    "GET /api/silences": Role.VIEWER,
    "DELETE /api/silences/<int:silence_id>": Role.OPERATOR,
    "GET /api/audit": Role.ADMIN,
}


def test_every_route_is_in_the_policy():
    assert sorted(ROUTES_IDS) == sorted(POLICY)


BAD_TOKENS = {"no-token": None, "forged": forged_token, "expired": expired_token, "alg-none": none_alg_token,
              "garbage": lambda: "not.a.jwt"}
READS = {"GET", "HEAD", "OPTIONS"}


def declared_statuses(route: Route) -> set[int]:
    """What the route may answer a caller its role admits: its ok and error statuses, and what the decorator
    adds (404 for a path parameter, 400 and 422 for a body, 400 for a query)."""
    codes = {route.ok_status, *route.errors, *route.same_shape}
    if "<" in route.rule:
        codes.add(404)
    if route.body is not None:
        codes |= {400, 422}
    if route.query is not None:
        codes.add(400)
    return codes


def assert_answered_as_declared(route: Route, r) -> None:
    """An admitted call gets a status the route declares, and never a server error."""
    assert r.status_code < 500, (r.status_code, r.data)
    assert r.status_code in declared_statuses(route), (r.status_code, sorted(declared_statuses(route)), r.data)


def token_of(role: Role) -> str:
    return token_for(role, "admin" if role is Role.ADMIN else None)


def cells(admitted: bool, reads: bool | None) -> list[tuple[Route, Role]]:
    """(route, role) cells of the matrix: refused or admitted ones; reads, actions or both (None)."""
    out = []
    for route, rid in zip(ROUTES, ROUTES_IDS, strict=True):
        needed = POLICY[rid]
        for role in Role:
            if (needed is None or role >= needed) == admitted and reads in (None, route.method in READS):
                out.append((route, role))
    return out


def cell_ids(cs: list[tuple[Route, Role]]) -> list[str]:
    return [f"{role.label}-{route.method} {route.rule}" for route, role in cs]


REFUSED = cells(admitted=False, reads=None)
ADMITTED_READS = cells(admitted=True, reads=True)
ADMITTED_ACTIONS = cells(admitted=True, reads=False)
PROTECTED = [(r, i) for r, i in zip(ROUTES, ROUTES_IDS, strict=True) if POLICY.get(i) is not None]
PUBLIC_READS = [(r, i) for r, i in zip(ROUTES, ROUTES_IDS, strict=True)
                if POLICY.get(i) is None and r.method in READS]
PUBLIC_ACTIONS = [(r, i) for r, i in zip(ROUTES, ROUTES_IDS, strict=True)
                  if POLICY.get(i) is None and r.method not in READS]
# views registered on purpose without the decorator: the Swagger UI page and its files, and the status page (HTML),
# public and outside the OpenAPI document (tests/api/test_swagger_ui.py, tests/api/test_status_page.py); any other
# undeclared view fails the URL map test
UNDECLARED_VIEWS = ["GET /api/docs", "GET /api/docs/<asset>", "GET /status"]
# rows the engine writes on its own (its logs, its scrapes, the audit trail of every call, refusals included); every
# other table is state a call could change
OWN_OUTPUT = {"logs", "metrics", "metrics_1m", "audit_log"}


def test_the_matrix_cells_are_every_route_for_every_role():
    assert len(REFUSED) + len(ADMITTED_READS) + len(ADMITTED_ACTIONS) == len(ROUTES) * len(Role)
    assert len(PUBLIC_READS) + len(PUBLIC_ACTIONS) + len(PROTECTED) == len(ROUTES)


@dataclass(frozen=True)
class Shared:
    """One started engine, its app and the state it started with."""

    runtime: Runtime
    app: Flask
    state: dict[str, object]


def state_of(rt: Runtime, app: Flask) -> dict[str, object]:
    """What a call could change: the rows of every table but the engine's own output, and the balancer."""
    with rt.sessions() as s:
        rows: dict[str, object] = {t.name: s.scalar(select(func.count()).select_from(t))
                                   for t in Base.metadata.sorted_tables if t.name not in OWN_OUTPUT}
    admin = {"Authorization": "Bearer " + token_of(Role.ADMIN)}
    rows["load-balancer"] = app.test_client().get("/api/load-balancer", headers=admin).json
    return rows


@pytest.fixture(scope="class")
def shared(db_engine, database_url, tmp_path_factory) -> Iterator[Shared]:
    """One started engine over a clean database, for the cells that change nothing."""
    truncate_all(db_engine)
    rt = Runtime.open(settings_for(database_url, tmp_path_factory.mktemp("shared")))
    try:
        rt.start()
        app = create_app(rt)
        for role in Role:
            token_of(role)  # each role's user exists before the state is taken
        yield Shared(rt, app, state_of(rt, app))
    finally:
        rt.stop()


@pytest.fixture
def shared_anon(shared):
    """A test client without a token, on the shared engine."""
    return shared.app.test_client()


@pytest.fixture
def started_anon(clean_db, settings) -> Iterator[FlaskClient]:
    """A test client without a token, on a started engine of its own (for a cell that changes state)."""
    rt = Runtime.open(settings)
    try:
        rt.start()
        yield create_app(rt).test_client()
    finally:
        rt.stop()


class TestCellsThatChangeNothing:
    """Refusals (401, 403) never reach a view and reads change nothing: one started engine answers them all."""

    def test_the_declared_routes_are_the_registered_routes(self, shared):
        real = sorted(f"{m} {rule.rule}" for rule in shared.app.url_map.iter_rules() if rule.endpoint != "static"
                      for m in (rule.methods or set()) - {"HEAD", "OPTIONS"})
        declared = sorted([i for r, i in zip(ROUTES, ROUTES_IDS, strict=True) if r.method not in ("HEAD", "OPTIONS")]
                          + UNDECLARED_VIEWS)
        assert sorted(set(real) - set(declared)) == [], "registered without the decorator"
        assert sorted(set(declared) - set(real)) == [], "declared but not registered"
        assert real == declared  # and none twice

    @pytest.mark.parametrize("route", [r for r, _ in PROTECTED], ids=[i for _, i in PROTECTED])
    @pytest.mark.parametrize("bad", list(BAD_TOKENS), ids=list(BAD_TOKENS))
    def test_protected_routes_refuse_bad_tokens(self, shared_anon, route, bad):
        maker = BAD_TOKENS[bad]
        r = call(shared_anon, route, maker() if maker else None)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert route.method == "HEAD" or r.json["error"]  # a HEAD answer has no body

    @pytest.mark.parametrize(("route", "role"), REFUSED, ids=cell_ids(REFUSED))
    def test_a_role_below_the_route_gets_403(self, shared_anon, route, role):
        needed = POLICY[f"{route.method} {route.rule}"]
        assert needed is not None  # a refused cell's route has a role
        r = call(shared_anon, route, token_of(role))
        assert r.status_code == 403
        assert route.method == "HEAD" or needed.label in r.json["error"]

    @pytest.mark.parametrize(("route", "role"), ADMITTED_READS, ids=cell_ids(ADMITTED_READS))
    def test_an_admitted_role_reads_as_declared(self, shared_anon, route, role):
        assert_answered_as_declared(route, call(shared_anon, route, token_of(role)))

    @pytest.mark.parametrize("route", [r for r, _ in PUBLIC_READS], ids=[i for _, i in PUBLIC_READS])
    def test_public_reads_need_no_token(self, shared_anon, route):
        assert_answered_as_declared(route, call(shared_anon, route))

    def test_openapi_lists_exactly_the_declared_routes(self, shared_anon):
        doc = shared_anon.get("/api/openapi.json").json
        ops = {f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item}
        expected = {f"{r.method} {openapi_path(r.rule)}" for r in ROUTES}
        assert ops == expected
        assert doc["paths"]["/api/services"]["post"]["security"] == [{"bearerAuth": []}]
        assert doc["paths"]["/api/health"]["get"]["security"] == []

    def test_the_shared_engine_is_as_it_started(self, shared):
        """Last in the class: the cells above changed nothing, so sharing one engine hid nothing."""
        assert state_of(shared.runtime, shared.app) == shared.state


@pytest.mark.parametrize(("route", "role"), ADMITTED_ACTIONS, ids=cell_ids(ADMITTED_ACTIONS))
def test_an_admitted_role_acts_as_declared(started_anon, route, role):
    assert_answered_as_declared(route, call(started_anon, route, token_of(role)))


@pytest.mark.parametrize("route", [r for r, _ in PUBLIC_ACTIONS], ids=[i for _, i in PUBLIC_ACTIONS])
def test_public_actions_need_no_token(started_anon, route):
    assert_answered_as_declared(route, call(started_anon, route))


def test_password_hashing_defaults_to_the_strong_cost():
    assert HashCost(time_cost=3, memory_cost=65_536, parallelism=4) == STRONG
    assert passwords().cost == CHEAP_HASHING  # what this run uses (tests/conftest.py)
    # a fresh interpreter is what production runs: its users are hashed at the strong cost
    code = "from engine.security.users import passwords; p = passwords(); print(p.hash('x'))"
    encoded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert encoded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_login_gives_a_token_with_the_role(anon, runtime):
    r = anon.post("/api/auth/token", json={"username": "admin", "password": "admin-password-for-tests"})
    assert r.status_code == 200 and r.json["role"] == "admin"
    claims = runtime.tokens.verify(r.json["token"])
    assert claims.username == "admin" and claims.role is Role.ADMIN
    assert datetime.fromisoformat(r.json["expiresAt"]) == claims.expires_at
    assert anon.get("/api/users", headers={"Authorization": f"Bearer {r.json['token']}"}).status_code == 200


def test_twenty_wrong_passwords_end_in_429_and_leave_no_secret_in_logs(anon, runtime):
    codes = [anon.post("/api/auth/token", json={"username": "admin", "password": f"guess-{n}"}).status_code
             for n in range(20)]
    assert codes[:10] == [401] * 10
    assert set(codes[10:]) == {429}
    r = anon.post("/api/auth/token", json={"username": "admin", "password": "admin-password-for-tests"})
    assert r.status_code == 429  # even the right password waits: guessing gains nothing
    assert int(r.headers["Retry-After"]) > 0
    runtime.writer.flush()
    with runtime.sessions() as s:
        text = " ".join(f"{m} {meta}" for m, meta in s.execute(select(LogEntry.message, LogEntry.metadata_)))
    assert "failed login for 'admin'" in text
    assert "guess-" not in text and "admin-password-for-tests" not in text


def test_api_rate_limit_is_per_caller_with_retry_after(clean_db, settings):
    # a fake clock: the bucket refills only if the test advances it, however slow the machine
    rt = Runtime.open(settings.replace(rate_limit=0.5, rate_burst=3), FakeClock(datetime.now(UTC)))
    try:
        c = create_app(rt).test_client()
        viewer = {"Authorization": "Bearer " + token_for(Role.VIEWER, "v1")}
        other = {"Authorization": "Bearer " + token_for(Role.VIEWER, "v2")}
        codes = [c.get("/api/overview", headers=viewer).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        limited = c.get("/api/overview", headers=viewer)
        assert limited.json is not None
        assert limited.json["error"].startswith("too many requests") and limited.headers["Retry-After"] == "2"
        assert c.get("/api/overview", headers=other).status_code == 200  # another user has their own bucket
        assert c.get("/proxy/nope/x", headers=viewer).status_code == 403  # the proxy's own bucket: not 429
    finally:
        rt.stop()


def test_oversized_body_is_413(client, runtime):
    r = client.post("/api/services", json={"name": "big", "url": "http://127.0.0.1:1", "x": "y" * 70_000})
    assert r.status_code == 413 and r.json["details"] == [{"field": "body", "message": "larger than 65536 bytes"}]
    with runtime.sessions() as s:
        assert s.scalars(select(User.username)).all() == ["admin", "test-operator"]  # the client's own: no more


def test_users_admin_flow_and_no_hashes_in_responses(admin, anon):
    r = admin.post("/api/users", json={"username": "ops", "password": "ops-password-1", "role": "operator"})
    assert r.status_code == 201 and r.json["role"] == "operator"
    assert admin.post("/api/users", json={"username": "ops", "password": "ops-password-1",
                                          "role": "operator"}).status_code == 409
    bad = admin.post("/api/users", json={"username": "x", "password": "short", "role": "root"})
    assert bad.status_code == 422 and {d["field"] for d in bad.json["details"]} == {"password", "role"}
    listed = admin.get("/api/users").json
    assert [u["username"] for u in listed] == ["admin", "ops"]
    assert all(set(u) == {"id", "username", "role", "createdAt"} for u in listed)
    token = anon.post("/api/auth/token", json={"username": "ops", "password": "ops-password-1"}).json["token"]
    assert anon.get("/api/users", headers={"Authorization": f"Bearer {token}"}).status_code == 403
    assert admin.delete(f"/api/users/{listed[0]['id']}").status_code == 409  # not yourself
    assert admin.delete(f"/api/users/{listed[1]['id']}").status_code == 200
    assert [u["username"] for u in admin.get("/api/users").json] == ["admin"]
