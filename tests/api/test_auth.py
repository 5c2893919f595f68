"""Authorization matrix over every declared route, logins, rate limits, body limits, secrets."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import jwt
import pytest
from sqlalchemy import select

from contract.roles import Role
from db.models import LogEntry, User
from engine.api import create_app, declared_routes
from engine.api.openapi import openapi_path
from engine.clock import FakeClock
from engine.runtime import Runtime
from engine.security.tokens import TokenIssuer
from tests.conftest import TEST_JWT_SECRET, token_for

ROUTES = declared_routes()
ROUTES_IDS = [f"{r.method} {r.rule}" for r in ROUTES]
# a body each mutating route accepts, so an allowed role gets past validation
BODIES = {
    ("POST", "/api/services"): {"name": "matrix", "url": "http://127.0.0.1:7999"},
    ("PUT", "/api/services/<int:service_id>"): {"weight": 2},
    ("POST", "/api/users"): {"username": "matrixuser", "password": "long-enough-pw", "role": "viewer"},
    ("POST", "/api/auth/token"): {"username": "admin", "password": "admin-password-for-tests"},
    ("PUT", "/api/load-balancer"): {"algorithm": "p2c"},
    ("PUT", "/api/circuit-breakers/<service_name>"): {"failureThreshold": 3},
}


def path_of(rule):
    return re.sub(r"<(?:\w+:)?\w+>", "1", rule)


def expired_token():
    past = FakeClock(datetime(2020, 1, 1, tzinfo=UTC))
    return TokenIssuer(TEST_JWT_SECRET, 60, past).issue("test-admin", Role.ADMIN)[0]


def forged_token():
    return TokenIssuer("another-secret-of-enough-length-xx", 3600, FakeClock(datetime.now(UTC))).issue(
        "test-admin", Role.ADMIN)[0]


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
    "GET /api/users": Role.ADMIN,
    "POST /api/users": Role.ADMIN,
    "DELETE /api/users/<int:user_id>": Role.ADMIN,
}


def test_every_route_is_in_the_policy():
    assert sorted(ROUTES_IDS) == sorted(POLICY)


BAD_TOKENS = {"no-token": None, "forged": forged_token, "expired": expired_token, "alg-none": none_alg_token,
              "garbage": lambda: "not.a.jwt"}


PROTECTED = [(r, i) for r, i in zip(ROUTES, ROUTES_IDS, strict=True) if POLICY.get(i) is not None]
PUBLIC = [(r, i) for r, i in zip(ROUTES, ROUTES_IDS, strict=True) if POLICY.get(i) is None]


@pytest.mark.parametrize("route", [r for r, _ in PROTECTED], ids=[i for _, i in PROTECTED])
@pytest.mark.parametrize("bad", list(BAD_TOKENS), ids=list(BAD_TOKENS))
def test_protected_routes_refuse_bad_tokens(anon, route, bad):
    maker = BAD_TOKENS[bad]
    r = call(anon, route, maker() if maker else None)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert route.method == "HEAD" or r.json["error"]  # a HEAD answer has no body


@pytest.mark.parametrize("route", ROUTES, ids=ROUTES_IDS)
@pytest.mark.parametrize("role", list(Role), ids=[r.label for r in Role])
def test_role_matrix(anon, route, role):
    needed = POLICY[f"{route.method} {route.rule}"]
    r = call(anon, route, token_for(role, "admin" if role is Role.ADMIN else None))
    if needed is not None and role < needed:
        assert r.status_code == 403
        assert route.method == "HEAD" or needed.label in r.json["error"]
    else:
        assert r.status_code not in (401, 403), r.data


@pytest.mark.parametrize("route", [r for r, _ in PUBLIC], ids=[i for _, i in PUBLIC])
def test_public_routes_need_no_token(anon, route):
    assert call(anon, route).status_code not in (401, 403)


def test_openapi_lists_exactly_the_declared_routes(anon):
    doc = anon.get("/api/openapi.json").json
    ops = {f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item}
    expected = {f"{r.method} {openapi_path(r.rule)}" for r in ROUTES}
    assert ops == expected
    assert doc["paths"]["/api/services"]["post"]["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/api/health"]["get"]["security"] == []


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
    rt = Runtime.open(settings.replace(rate_limit=0.5, rate_burst=3))
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
    assert r.status_code == 413 and r.json["error"]
    with runtime.sessions() as s:
        assert s.scalars(select(User.username)).all() == ["admin"]


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
