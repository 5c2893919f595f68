"""Login limiting that cannot be raced and cannot be turned against everyone: each attempt is charged before its
password is checked (given back on success), and failures are counted per client address and user name."""

from __future__ import annotations

import threading

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
