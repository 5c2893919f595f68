"""Migrations and the embedded server: idempotent upgrades, data kept across restarts."""

from __future__ import annotations

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from contract.errors import DatabaseError
from db.session import MIGRATIONS, EmbeddedPostgres, make_engine, migrate, sqlalchemy_url

TABLES = {"services", "instances", "circuit_breakers", "circuit_breaker_transitions", "metrics", "logs",
          "load_tests", "simulations", "scaling_events", "users", "audit_log", "alembic_version"}


def test_migrate_twice_is_a_no_op(clean_db):
    migrate(clean_db)
    migrate(clean_db)
    assert set(inspect(clean_db).get_table_names()) >= TABLES
    with clean_db.connect() as c:
        at = c.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert at == ScriptDirectory.from_config(config).get_heads() and len(at) == 1  # the one head


@pytest.mark.parametrize(
    ("url", "expected"),
    [("postgresql://u@h/db", "postgresql+psycopg://u@h/db"), ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
     ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db")],
)
def test_sqlalchemy_url_uses_psycopg(url, expected):
    assert sqlalchemy_url(url) == expected


def test_other_schemes_are_refused():
    with pytest.raises(DatabaseError, match="postgresql://"):
        sqlalchemy_url("mysql://u@h/db")


def test_embedded_server_keeps_data_across_restarts(pg_dir):
    server = EmbeddedPostgres(pg_dir)
    url = server.start()
    try:
        engine = make_engine(url)
        with engine.begin() as c:
            c.execute(text("CREATE TABLE kept (v int)"))
            c.execute(text("INSERT INTO kept VALUES (42)"))
        engine.dispose()
    finally:
        server.stop()
    assert (pg_dir / "pg" / "PG_VERSION").exists()
    again = EmbeddedPostgres(pg_dir)
    engine = make_engine(again.start())
    try:
        with engine.connect() as c:
            assert c.execute(text("SELECT v FROM kept")).scalar() == 42
    finally:
        engine.dispose()
        again.stop()
