"""SSRF guard, tokens, rate limiter, users and secret files: each piece alone."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime

import pytest

from contract.errors import Unauthorized
from contract.roles import Role
from engine.clock import FakeClock
from engine.security.ratelimit import RateLimiter
from engine.security.secretfile import read_or_create
from engine.security.ssrf import channel_refusal, parse_allowlist, refusal
from engine.security.tokens import TokenIssuer
from engine.security.users import authenticate, create_user, ensure_admin

LOOPBACK = ("127.0.0.0/8", "::1/128", "localhost")
SECRET = "s" * 40


def resolver(table):
    def resolve(host):
        if host not in table:
            raise OSError("unknown host")
        return [ipaddress.ip_address(a) for a in table[host]]
    return resolve


DNS = resolver({
    "127.0.0.1": ["127.0.0.1"], "localhost": ["127.0.0.1", "::1"], "169.254.169.254": ["169.254.169.254"],
    "metadata.internal": ["169.254.169.254"], "fd00:ec2::254": ["fd00:ec2::254"], "10.1.2.3": ["10.1.2.3"],
    "svc.example": ["10.9.9.9"], "sneaky.example": ["127.0.0.1", "169.254.1.1"], "0.0.0.0": ["0.0.0.0"],
})


@pytest.mark.parametrize(
    ("url", "allowlist", "reason"),
    [
        ("http://127.0.0.1:8000", LOOPBACK, None),
        ("http://localhost:8000", LOOPBACK, None),
        ("http://10.1.2.3", LOOPBACK, "10.1.2.3 is not in INSTANCE_ALLOWLIST"),
        ("http://10.1.2.3", ("10.0.0.0/8",), None),
        ("http://169.254.169.254/latest", ("*",), "169.254.169.254 is a link-local or metadata address"),
        ("http://metadata.internal", ("*", "metadata.internal"), "169.254.169.254 is a link-local or metadata address"),
        ("http://[fd00:ec2::254]", ("*",), "fd00:ec2::254 is a link-local or metadata address"),
        ("http://169.254.169.254", ("169.254.0.0/16",), "169.254.169.254 is a link-local or metadata address"),
        ("http://sneaky.example", ("*",), "169.254.1.1 is a link-local or metadata address"),
        ("http://0.0.0.0:80", ("*",), "0.0.0.0 is a link-local or metadata address"),
        ("http://svc.example", ("svc.example",), None),
        ("http://svc.example", ("*",), None),
        ("http://nowhere.example", ("*",), "host 'nowhere.example' does not resolve"),
    ],
    ids=["loopback", "localhost", "private-not-listed", "private-cidr", "metadata-v4", "metadata-by-name",
         "metadata-v6", "cidr-does-not-cover", "mixed-answers", "unspecified", "listed-name", "star", "unresolvable"],
)
def test_refusal(url, allowlist, reason):
    assert refusal(url, allowlist, DNS) == reason


CHANNEL_DNS = resolver({
    "127.0.0.1": ["127.0.0.1"], "10.1.2.3": ["10.1.2.3"], "svc.example": ["10.9.9.9"],
    "169.254.169.254": ["169.254.169.254"], "sneaky.example": ["127.0.0.1", "169.254.1.1"],
    "::ffff:169.254.169.254": ["::ffff:169.254.169.254"], "100.100.100.200": ["100.100.100.200"],
    "fe80::1": ["fe80::1"],
})


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", None),
        ("10.1.2.3", None),
        ("svc.example", None),
        ("nowhere.example", None),
        ("169.254.169.254", "169.254.169.254 is a link-local or metadata address"),
        ("sneaky.example", "169.254.1.1 is a link-local or metadata address"),
        ("::ffff:169.254.169.254", "169.254.169.254 is a link-local or metadata address"),
        ("100.100.100.200", "100.100.100.200 is a link-local or metadata address"),
        ("[fe80::1]", "fe80::1 is a link-local or metadata address"),
        ("Metadata.Google.Internal.", "metadata.google.internal is a cloud metadata host"),
    ],
    ids=["loopback", "private", "private-name", "unresolvable", "metadata", "mixed-answers", "v4-mapped", "alibaba",
         "link-local-v6", "metadata-name"],
)
def test_channel_refusal_allows_internal_receivers_and_refuses_metadata(host, reason):
    assert channel_refusal(host, CHANNEL_DNS) == reason


def test_parse_allowlist():
    assert parse_allowlist(" 10.0.0.0/8 ,localhost,*") == ("10.0.0.0/8", "localhost", "*")
    for bad in ("10.0.0.0/99", " , "):
        with pytest.raises(ValueError):
            parse_allowlist(bad)


def test_token_round_trip_and_expiry_with_the_fake_clock():
    clock = FakeClock(datetime(2026, 5, 1, tzinfo=UTC))
    issuer = TokenIssuer(SECRET, ttl_seconds=60, clock=clock)
    token, expires = issuer.issue("ana", Role.OPERATOR, 4)
    claims = issuer.verify(token)
    assert (claims.username, claims.role, claims.version, claims.expires_at, expires) == (
        "ana", Role.OPERATOR, 4, datetime(2026, 5, 1, 0, 1, tzinfo=UTC), datetime(2026, 5, 1, 0, 1, tzinfo=UTC))
    clock.advance(59)
    assert issuer.verify(token).username == "ana"
    clock.advance(1)
    with pytest.raises(Unauthorized, match="expired"):
        issuer.verify(token)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c"], ids=["empty", "word", "three-parts"])
def test_malformed_tokens_are_unauthorized(token):
    with pytest.raises(Unauthorized, match="invalid token"):
        TokenIssuer(SECRET, 60, FakeClock()).verify(token)


def test_short_secret_is_refused():
    with pytest.raises(ValueError):
        TokenIssuer("short", 60, FakeClock())


def test_rate_limiter_bucket():
    clock = FakeClock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.hit("a") for _ in range(3)] == [None, None, None]
    assert limiter.hit("a") == pytest.approx(0.5)
    assert limiter.hit("b") is None  # keys are independent
    clock.advance(0.5)
    assert limiter.retry_after("a") is None
    assert limiter.hit("a") is None and limiter.hit("a") == pytest.approx(0.5)
    clock.advance(100)
    assert [limiter.hit("a") for _ in range(4)][-1] is not None  # refill stops at the burst


def test_rate_limiter_remembers_a_bounded_number_of_keys():
    limiter = RateLimiter(rate=1.0, burst=1, clock=FakeClock(), max_keys=2)
    for key in ("a", "b", "c"):
        limiter.hit(key)
    assert len(limiter._buckets) == 2 and "a" not in limiter._buckets


def test_secret_file_is_created_once_with_mode_0600(tmp_path):
    path = tmp_path / "sub" / "jwt_secret"
    first = read_or_create(path)
    assert len(first) >= 40 and read_or_create(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_first_admin_is_generated_once(sessions, tmp_path):
    with sessions.begin() as s:
        first = ensure_admin(s, tmp_path, None)
    assert first is not None and first.generated_password
    path = tmp_path / "admin_password"
    assert path.read_text().strip() == first.generated_password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sessions.begin() as s:
        assert ensure_admin(s, tmp_path, None) is None
        user = authenticate(s, "admin", first.generated_password)
        assert user is not None and user.role == "admin"
        assert user.password_hash.startswith("$argon2") and first.generated_password not in user.password_hash
        assert authenticate(s, "admin", "wrong") is None and authenticate(s, "nobody", "x") is None


def test_admin_password_from_the_environment_writes_no_file(sessions, tmp_path):
    with sessions.begin() as s:
        first = ensure_admin(s, tmp_path, "from-the-env-1")
        assert first is not None and first.generated_password is None
        assert authenticate(s, "admin", "from-the-env-1") is not None
        create_user(s, "viewer1", "viewer-password", Role.VIEWER)
    assert not (tmp_path / "admin_password").exists()
