"""Fixtures: a real PostgreSQL (DATABASE_URL's server, else an embedded one), chained to sessions and apps."""

from __future__ import annotations

import os
import random
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from contract.roles import Role
from contract.settings import Settings
from db.models import Base
from db.session import EmbeddedPostgres, make_engine, make_session_factory, migrate, reader_role_sql, sqlalchemy_url
from engine.clock import SystemClock
from engine.runtime import Runtime
from engine.security.tokens import TokenIssuer
from engine.security.users import HashCost, use_hash_cost

# tests sign tokens with a fixed secret, so a page test and a live API agree on them
T = TypeVar("T")

TEST_JWT_SECRET = "test-secret-0123456789-abcdefghijklmnop"
MANAGED_PORTS = 40  # the demo fleet's 3 services x at most 6 instances, plus replacements
# argon2 at the least work it accepts: a test's logins and new users cost microseconds, not a tenth of a second
CHEAP_HASHING = HashCost(time_cost=1, memory_cost=8, parallelism=1)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_PORT_BASES = random.SystemRandom()  # not the module's generator: a plugin that reseeds it would repeat bases


def free_port_base(count: int, low: int = 20_000, high: int = 32_000) -> int:
    """The first of `count` consecutive loopback ports nothing listens on, from a base drawn at random.

    Below the kernel's ephemeral range (32768..), so client sockets do not take them; drawn afresh per call,
    so two runs on one host start their fleets apart (the product's free_port still skips a taken one).
    """
    for _ in range(200):
        base = _PORT_BASES.randrange(low, high - count)
        held: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError(f"no {count} consecutive free loopback ports in {low}..{high}")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, step: float = 0.05) -> T:
    """Poll predicate until it returns something truthy (returned) or timeout passes (its last value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Passwords hashed at CHEAP_HASHING in this process for the whole run (engines in child processes keep the
    strong default)."""
    previous = use_hash_cost(CHEAP_HASHING)
    yield
    use_hash_cost(previous)


@contextmanager
def server_dir() -> Iterator[Path]:
    """A directory for an embedded server's data outside pytest's own temporary tree: pytest makes that tree
    private to its user at every session start, which would lock out the server's own user (another test run on
    the same host starting mid-run)."""
    path = Path(tempfile.mkdtemp(prefix="mm-test-pg-"))
    path.chmod(0o755)  # the server runs as its own user: it must reach its data directory
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A directory for one test's embedded server (see server_dir)."""
    with server_dir() as path:
        yield path


def drop_database(admin: Engine, name: str) -> None:
    """Drop a test database and the read-only role its migrations made (roles outlive databases)."""
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        role = c.scalar(text(f"SELECT {reader_role_sql(':name')}"), {"name": name})
        c.execute(text(f'DROP ROLE IF EXISTS "{role}"'))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database for this test run: on DATABASE_URL's server if set, else on an embedded server."""
    with ExitStack() as stack:
        server_url = os.environ.get("DATABASE_URL")
        if not server_url:
            embedded = EmbeddedPostgres(stack.enter_context(server_dir()))
            server_url = embedded.start()
            stack.callback(embedded.stop)
        name = f"mm_test_{uuid.uuid4().hex[:10]}"
        admin = make_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=None)
        stack.callback(admin.dispose)
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(sqlalchemy_url(server_url)).set(database=name).render_as_string(hide_password=False)
        try:
            yield url
        finally:
            drop_database(admin, name)


@pytest.fixture(scope="session")
def db_engine(database_url: str) -> Iterator[Engine]:
    """A migrated engine shared by the run."""
    engine = make_engine(database_url)
    migrate(engine)
    _DATABASES.append(engine)
    yield engine
    _DATABASES.remove(engine)
    engine.dispose()


def truncate_all(engine: Engine) -> None:
    """Every table emptied, ids restarted."""
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as c:
        c.execute(text("SELECT set_config('mm.audit_retention', 'on', true)"))  # audit_log refuses TRUNCATE otherwise
        c.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def clean_db(db_engine: Engine) -> Engine:
    """Every table emptied, ids restarted."""
    truncate_all(db_engine)
    return db_engine


@pytest.fixture
def sessions(clean_db: Engine) -> sessionmaker[Session]:
    """A session factory on the clean database."""
    return make_session_factory(clean_db)


def settings_for(database_url: str, data_dir: Path) -> Settings:
    """Settings for an engine under test: fast flushes, ports free at run time (managed instances too), data in
    data_dir."""
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        api_port=free_port(),
        proxy_port=0,
        demo_port_base=free_port_base(MANAGED_PORTS),
        flush_interval=0.05,
        health_interval=0.5,
        health_timeout=1.0,
        collect_interval=0.5,
        jwt_secret=SecretStr(TEST_JWT_SECRET),
        admin_password=SecretStr("admin-password-for-tests"),
        rate_limit=1000.0,
        rate_burst=10_000,
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for an engine under test: fast flushes, free ports, data in tmp."""
    return settings_for(database_url, tmp_path)


_DATABASES: list[Engine] = []  # the run's test database, once db_engine has made it


def token_for(role: Role, username: str | None = None) -> str:
    """A valid bearer token for a user with this role: the user is added to the test database unless there (with
    a password nobody can log in with), and the token carries its current token version, as the API checks."""
    name = username or f"test-{role.label}"
    assert _DATABASES, "token_for needs the test database (a fixture that depends on db_engine)"
    with _DATABASES[0].begin() as c:
        row = c.execute(text("SELECT role, token_version FROM users WHERE username = :n"), {"n": name}).first()
        if row is None:  # looked up first: an insert that conflicts would still use up an id
            row = c.execute(text("INSERT INTO users (username, password_hash, role) VALUES (:n, '!', :r) "
                                 "RETURNING role, token_version"), {"n": name, "r": role.label}).one()
    held, version = row
    assert held == role.label, f"user {name!r} exists with the role {held}, not {role.label}"
    token, _ = TokenIssuer(TEST_JWT_SECRET, 3600, SystemClock()).issue(name, role, version)
    return token


@pytest.fixture
def runtime(clean_db: Engine, settings: Settings) -> Iterator[Runtime]:
    """An opened runtime (database, writer, registry) without background jobs."""
    rt = Runtime.open(settings)
    yield rt
    rt.stop()


@pytest.fixture
def app(runtime: Runtime):  # type: ignore[no-untyped-def]
    """The Flask app over the runtime."""
    from engine.api import create_app

    return create_app(runtime)


@pytest.fixture
def anon(app):  # type: ignore[no-untyped-def]
    """A test client without a token."""
    return app.test_client()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    """A test client with an operator's token (reads and actions, no user management)."""
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.OPERATOR)
    return c


@pytest.fixture
def admin(app):  # type: ignore[no-untyped-def]
    """A test client with an admin's token."""
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(Role.ADMIN, "admin")
    return c
