"""Login limiting that cannot be raced and cannot be turned against everyone: each attempt is charged before its
password is checked (given back on success), and failures are counted per client address and user name; the
dashboard's logins count per browser."""

from __future__ import annotations

import threading

from contract.roles import CLIENT_ADDRESS_HEADER, DASHBOARD_SECRET_HEADER
from contract.settings import Settings


def test_sixteen_concurrent_guesses_get_no_more_tries_than_the_burst(anon, settings: Settings):
    barrier = threading.Barrier(16)
    codes: list[int] = []
    lock = threading.Lock()

    def guess(n: int) -> None:
        barrier.wait()
        code = anon.post("/api/auth/token", json={"username": "admin", "password": f"guess-{n}"}).status_code
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(codes) == sorted([401] * settings.login_attempts + [429] * (16 - settings.login_attempts))


def test_one_users_wrong_passwords_do_not_lock_out_another_behind_the_same_address(anon, admin, settings: Settings):
    assert admin.post("/api/users", json={"username": "bob", "password": "bob-password-1", "role": "viewer"}
                      ).status_code == 201
    codes = [anon.post("/api/auth/token", json={"username": "mallory", "password": f"x-{n}"}).status_code
             for n in range(settings.login_attempts + 2)]
    assert codes[-1] == 429
    assert anon.post("/api/auth/token", json={"username": "bob", "password": "bob-password-1"}).status_code == 200


def test_successful_logins_cost_nothing(anon, settings: Settings):
    for _ in range(settings.login_attempts * 2):
        r = anon.post("/api/auth/token", json={"username": "admin", "password": "admin-password-for-tests"})
        assert r.status_code == 200


def test_browsers_behind_the_dashboard_have_their_own_buckets_and_a_forged_address_has_none(anon, runtime,
                                                                                          settings: Settings):
    """The dashboard (its secret) names each browser's address; without the secret, or with a wrong one, a named
    address is ignored and the socket's address counts."""
    def attempt(password: str, headers: dict[str, str]) -> int:
        code: int = anon.post("/api/auth/token", json={"username": "admin", "password": password},
                              headers=headers).status_code
        return code

    def via_dashboard(address: str) -> dict[str, str]:
        return {CLIENT_ADDRESS_HEADER: address, DASHBOARD_SECRET_HEADER: runtime.dashboard_secret}

    first = [attempt(f"x-{n}", via_dashboard("203.0.113.5")) for n in range(settings.login_attempts + 1)]
    assert first == [401] * settings.login_attempts + [429]
    assert attempt("admin-password-for-tests", via_dashboard("198.51.100.7")) == 200  # another browser: own bucket
    assert attempt("x", via_dashboard("198.51.100.7")) == 401

    # no secret: the socket's address (the test client's 127.0.0.1) is charged, whatever address is named
    forged = [attempt(f"y-{n}", {CLIENT_ADDRESS_HEADER: f"192.0.2.{n}"}) for n in range(settings.login_attempts)]
    assert forged == [401] * settings.login_attempts
    assert attempt("y", {CLIENT_ADDRESS_HEADER: "192.0.2.200"}) == 429
    assert attempt("y", {CLIENT_ADDRESS_HEADER: "192.0.2.201", DASHBOARD_SECRET_HEADER: "guessed"}) == 429
    assert attempt("y", {}) == 429
    assert attempt("y", via_dashboard("not-an-address")) == 429  # a name that is no address: the socket's
