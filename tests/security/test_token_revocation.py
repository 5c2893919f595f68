"""Tokens end when their user is removed, demoted, given a new password or logs out: at once in the engine that made
the change, within a second in another engine on the same database. Real tokens from POST /api/auth/token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from contract.errors import Unauthorized, Unavailable
from contract.roles import Role
from contract.settings import Settings
from db.models import User
from engine.api import create_app
from engine.clock import FakeClock
from engine.runtime import Runtime
from engine.security.revocation import REVOCATION_TTL_S, TokenVersions
from engine.security.tokens import TokenIssuer
from tests.conftest import TEST_JWT_SECRET, token_for

ADMIN_PASSWORD = "admin-password-for-tests"


@pytest.fixture
def frozen(clean_db, settings: Settings) -> Iterator[tuple[Runtime, FlaskClient, FakeClock]]:
    """An engine whose clock never moves unless the test moves it: its version cache never lapses by itself, so
    only an explicit forget() can make a change visible."""
    clock = FakeClock(datetime.now(UTC))
    rt = Runtime.open(settings, clock)
    try:
        yield rt, create_app(rt).test_client(), clock
    finally:
        rt.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def log_in(c: FlaskClient, username: str, password: str) -> str:
    r = c.post("/api/auth/token", json={"username": username, "password": password})
    assert r.status_code == 200 and r.json is not None, r.json
    token: str = r.json["token"]
    return token


def add_user(c: FlaskClient, admin: str, username: str, role: str, password: str = "long-enough-pw") -> int:
    r = c.post("/api/users", json={"username": username, "password": password, "role": role}, headers=bearer(admin))
    assert r.status_code == 201 and r.json is not None, r.json
    user_id: int = r.json["id"]
    return user_id


def usernames(rt: Runtime) -> list[str]:
    with rt.sessions() as s:
        return list(s.scalars(select(User.username).order_by(User.id)))


def test_a_removed_admins_token_creates_nothing_at_once(frozen):
    rt, c, _ = frozen
    admin = log_in(c, "admin", ADMIN_PASSWORD)
    eve_id = add_user(c, admin, "eve", "admin")
    eve = log_in(c, "eve", "long-enough-pw")
    assert c.get("/api/users", headers=bearer(eve)).status_code == 200  # eve's version is now in the cache
    assert c.delete(f"/api/users/{eve_id}", headers=bearer(admin)).status_code == 200
    # the same instant on the engine's clock: only the removal itself can have ended the cached answer
    r = c.post("/api/users", json={"username": "mallory", "password": "long-enough-pw", "role": "admin"},
               headers=bearer(eve))
    assert r.status_code == 401 and "no longer exists" in r.json["error"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert usernames(rt) == ["admin"]


def test_a_demoted_admins_old_token_cannot_do_admin_things(frozen):
    rt, c, _ = frozen
    admin = log_in(c, "admin", ADMIN_PASSWORD)
    eve_id = add_user(c, admin, "eve", "admin")
    eve = log_in(c, "eve", "long-enough-pw")
    assert c.get("/api/users", headers=bearer(eve)).status_code == 200
    r = c.put(f"/api/users/{eve_id}", json={"role": "viewer"}, headers=bearer(admin))
    assert r.status_code == 200 and (r.json["username"], r.json["role"]) == ("eve", "viewer")
    assert c.post("/api/users", json={"username": "mallory", "password": "long-enough-pw", "role": "admin"},
                  headers=bearer(eve)).status_code == 401
    assert c.get("/api/overview", headers=bearer(eve)).status_code == 401  # the old token is over, not just smaller
    again = log_in(c, "eve", "long-enough-pw")
    assert c.get("/api/users", headers=bearer(again)).status_code == 403
    assert c.get("/api/overview", headers=bearer(again)).status_code == 200
    assert usernames(rt) == ["admin", "eve"]


def test_an_admins_new_password_for_a_user_ends_their_tokens(frozen):
    _, c, _ = frozen
    admin = log_in(c, "admin", ADMIN_PASSWORD)
    bob_id = add_user(c, admin, "bob", "operator")
    bob = log_in(c, "bob", "long-enough-pw")
    assert c.put(f"/api/users/{bob_id}", json={"password": "a-new-password"}, headers=bearer(admin)).status_code == 200
    assert c.get("/api/overview", headers=bearer(bob)).status_code == 401
    assert c.post("/api/auth/token", json={"username": "bob", "password": "long-enough-pw"}).status_code == 401
    assert c.get("/api/overview", headers=bearer(log_in(c, "bob", "a-new-password"))).status_code == 200


def test_user_changes_are_validated_and_change_nothing_when_refused(frozen):
    rt, c, _ = frozen
    admin = log_in(c, "admin", ADMIN_PASSWORD)
    bob_id = add_user(c, admin, "bob", "viewer")
    cases = [({}, ["body"]), ({"role": "root"}, ["role"]), ({"password": "short"}, ["password"]),
             ({"role": "admin", "name": "x"}, ["name"])]
    for body, fields in cases:
        r = c.put(f"/api/users/{bob_id}", json=body, headers=bearer(admin))
        assert r.status_code == 422 and [d["field"] for d in r.json["details"]] == fields, (body, r.json)
    assert c.put("/api/users/999999", json={"role": "viewer"}, headers=bearer(admin)).status_code == 404
    admin_id = c.get("/api/users", headers=bearer(admin)).json[0]["id"]
    last = c.put(f"/api/users/{admin_id}", json={"role": "operator"}, headers=bearer(admin))
    assert last.status_code == 409 and "last admin" in last.json["error"]
    assert c.get("/api/users", headers=bearer(admin)).status_code == 200  # refused: the admin's token still stands
    with rt.sessions() as s:
        assert [(u.username, u.role, u.token_version) for u in s.scalars(select(User).order_by(User.id))] == [
            ("admin", "admin", 0), ("bob", "viewer", 0)]


def test_changing_your_own_password_ends_your_other_tokens_and_gives_a_fresh_one(frozen):
    _, c, _ = frozen
    admin = log_in(c, "admin", ADMIN_PASSWORD)
    add_user(c, admin, "bob", "viewer")
    laptop, phone = log_in(c, "bob", "long-enough-pw"), log_in(c, "bob", "long-enough-pw")
    wrong = c.put("/api/auth/password", json={"currentPassword": "nope", "newPassword": "a-new-password"},
                  headers=bearer(laptop))
    assert wrong.status_code == 403 and [d["field"] for d in wrong.json["details"]] == ["currentPassword"]
    short = c.put("/api/auth/password", json={"currentPassword": "long-enough-pw", "newPassword": "short"},
                  headers=bearer(laptop))
    assert short.status_code == 422 and [d["field"] for d in short.json["details"]] == ["newPassword"]
    assert c.get("/api/overview", headers=bearer(phone)).status_code == 200  # refused changes ended nothing
    r = c.put("/api/auth/password", json={"currentPassword": "long-enough-pw", "newPassword": "a-new-password"},
              headers=bearer(laptop))
    assert r.status_code == 200 and r.json["role"] == "viewer"
    assert c.get("/api/overview", headers=bearer(laptop)).status_code == 401
    assert c.get("/api/overview", headers=bearer(phone)).status_code == 401
    assert c.get("/api/overview", headers=bearer(r.json["token"])).status_code == 200
    assert c.post("/api/auth/token", json={"username": "bob", "password": "long-enough-pw"}).status_code == 401
    log_in(c, "bob", "a-new-password")


def test_wrong_current_passwords_are_limited_like_logins(frozen, settings: Settings):
    _, c, _ = frozen
    admin = log_in(c, "admin", ADMIN_PASSWORD)
    add_user(c, admin, "bob", "viewer")
    bob = log_in(c, "bob", "long-enough-pw")
    codes = [c.put("/api/auth/password", json={"currentPassword": f"guess-{n}", "newPassword": "a-new-password"},
                   headers=bearer(bob)).status_code for n in range(settings.login_attempts + 1)]
    assert codes == [403] * settings.login_attempts + [429]
    right = c.put("/api/auth/password", json={"currentPassword": "long-enough-pw", "newPassword": "a-new-password"},
                  headers=bearer(bob))
    assert right.status_code == 429  # the right one waits too: guessing gains nothing


def test_logout_ends_every_token_of_the_caller(frozen):
    _, c, _ = frozen
    admin = log_in(c, "admin", ADMIN_PASSWORD)
    add_user(c, admin, "bob", "operator")
    laptop, phone = log_in(c, "bob", "long-enough-pw"), log_in(c, "bob", "long-enough-pw")
    assert c.get("/api/overview", headers=bearer(laptop)).status_code == 200
    r = c.post("/api/auth/logout", headers=bearer(laptop))
    assert r.status_code == 200 and "bob" in r.json["message"]
    assert c.get("/api/overview", headers=bearer(laptop)).status_code == 401
    assert c.get("/api/overview", headers=bearer(phone)).status_code == 401
    assert c.post("/api/auth/logout", headers=bearer(laptop)).status_code == 401
    assert c.get("/api/overview", headers=bearer(admin)).status_code == 200  # another user's tokens stand
    assert c.get("/api/overview", headers=bearer(log_in(c, "bob", "long-enough-pw"))).status_code == 200


def test_a_well_signed_token_of_no_user_or_another_version_is_refused(frozen):
    _, c, _ = frozen
    issuer = TokenIssuer(TEST_JWT_SECRET, 3600, FakeClock(datetime.now(UTC)))
    ghost = issuer.issue("ghost", Role.ADMIN, 0)[0]
    r = c.post("/api/users", json={"username": "mallory", "password": "long-enough-pw", "role": "admin"},
               headers=bearer(ghost))
    assert r.status_code == 401
    ahead = issuer.issue("admin", Role.ADMIN, 7)[0]  # a version the user never had
    assert c.get("/api/users", headers=bearer(ahead)).status_code == 401
    token_for(Role.VIEWER)  # test-viewer exists, a viewer at version 0
    promoted = issuer.issue("test-viewer", Role.ADMIN, 0)[0]  # its version, a role it does not hold
    assert c.get("/api/users", headers=bearer(promoted)).status_code == 401
    expired = TokenIssuer(TEST_JWT_SECRET, 60, FakeClock(datetime(2020, 1, 1, tzinfo=UTC))).issue(
        "admin", Role.ADMIN, 0)[0]
    forged = TokenIssuer("another-secret-of-enough-length-xx", 3600, FakeClock(datetime.now(UTC))).issue(
        "admin", Role.ADMIN, 0)[0]
    for bad in (expired, forged):
        assert c.get("/api/users", headers=bearer(bad)).status_code == 401


def test_another_engines_change_is_seen_within_the_cache_time(sessions: sessionmaker[Session]):
    clock = FakeClock()
    with sessions.begin() as s:
        s.add(User(username="ana", password_hash="!", role="operator"))
    versions = TokenVersions(sessions, clock)
    claims = TokenIssuer(TEST_JWT_SECRET, 3600, clock).verify(
        TokenIssuer(TEST_JWT_SECRET, 3600, clock).issue("ana", Role.OPERATOR, 0)[0])
    versions.check(claims)
    with sessions.begin() as s:  # as another engine on the same database would
        s.execute(update(User).where(User.username == "ana").values(token_version=User.token_version + 1))
    clock.advance(REVOCATION_TTL_S * 0.9)
    versions.check(claims)  # still cached: at most the cache time stale
    clock.advance(REVOCATION_TTL_S * 0.1)
    with pytest.raises(Unauthorized, match="revoked"):
        versions.check(claims)


def test_when_the_database_cannot_answer_the_last_answer_stands(sessions: sessionmaker[Session]):
    clock = FakeClock()
    with sessions.begin() as s:
        s.add(User(username="ana", password_hash="!", role="operator"))
    down = {"now": False}

    def factory() -> Session:
        if down["now"]:
            raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))
        return sessions()

    versions = TokenVersions(factory, clock)  # type: ignore[arg-type]
    assert versions.current("ana") == (0, Role.OPERATOR)
    down["now"] = True
    clock.advance(REVOCATION_TTL_S * 5)
    assert versions.current("ana") == (0, Role.OPERATOR)  # the proxy and reads keep working through an outage
    with pytest.raises(Unavailable):
        versions.current("bob")  # never read: cannot be vouched for
