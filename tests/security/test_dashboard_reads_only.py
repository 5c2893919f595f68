"""The dashboard's database connections cannot write: they act as the database's read-only role (made by the
migrations) inside read-only transactions. Tried through the dashboard's own session factory: every write fails,
every table and the pages' real reads answer, and a partition made after the migrations is readable too."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import streamlit as st
from sqlalchemy import Engine, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from db import partitions, queries, storage_queries
from db.models import Base
from db.session import make_engine, make_reader_engine, migrate, reader_role_sql
from tests.conftest import drop_database
from ui import data

INSUFFICIENT_PRIVILEGE = "42501"
READ_ONLY_TRANSACTION = "25006"
WRITES = {
    "insert": "INSERT INTO services (name, health_path, weight, status, managed) "
              "VALUES ('intruder', '/health', 1, 'unknown', false)",
    "update": "UPDATE users SET role = 'admin'",
    "delete": "DELETE FROM logs",
    "truncate": "TRUNCATE logs",
    "create-table": "CREATE TABLE intruder (id int)",
    "drop-table": "DROP TABLE logs",
}
# a temporary table changes nothing stored, and every role may make one (TEMP is PUBLIC's): the read-only
# transaction refuses it, the role does not
READ_ONLY_REFUSES = {**WRITES, "create-temp-table": "CREATE TEMP TABLE intruder (id int)"}


@pytest.fixture
def dashboard(monkeypatch: pytest.MonkeyPatch, database_url: str, clean_db: Engine) -> Iterator[sessionmaker[Session]]:
    """The session factory the dashboard's pages read through (ui.data), on the migrated test database."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    st.cache_resource.clear()
    yield data.session_factory()
    st.cache_resource.clear()


def sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def test_the_dashboard_acts_as_the_databases_read_only_role(dashboard: sessionmaker[Session]):
    with dashboard() as session:
        user, role, read_only = session.execute(
            text(f"SELECT current_user, {reader_role_sql()}, current_setting('transaction_read_only')")).one()
    assert user == role and role.startswith("mm_dashboard_mm_test_")
    assert read_only == "on"


@pytest.mark.parametrize("statement", list(READ_ONLY_REFUSES.values()), ids=list(READ_ONLY_REFUSES))
def test_every_write_fails(dashboard: sessionmaker[Session], statement: str):
    with dashboard() as session, pytest.raises(DBAPIError) as refused:
        session.execute(text(statement))
    assert sqlstate(refused.value) in {READ_ONLY_TRANSACTION, INSUFFICIENT_PRIVILEGE}, refused.value


@pytest.mark.parametrize("statement", list(WRITES.values()), ids=list(WRITES))
def test_a_read_write_transaction_is_refused_by_the_role(dashboard: sessionmaker[Session], statement: str):
    """The role alone holds: a transaction that asks to write is still denied."""
    with dashboard() as session:
        session.execute(text("SET TRANSACTION READ WRITE"))
        with pytest.raises(DBAPIError) as refused:
            session.execute(text(statement))
    assert sqlstate(refused.value) == INSUFFICIENT_PRIVILEGE, refused.value


def test_every_table_and_the_pages_reads_answer(dashboard: sessionmaker[Session], sessions: sessionmaker[Session]):
    with sessions.begin() as writer:
        writer.execute(text("INSERT INTO services (name, health_path, weight, status, managed) "
                            "VALUES ('shop', '/health', 1, 'healthy', false)"))
    with dashboard() as session:
        for table in Base.metadata.sorted_tables:
            session.execute(text(f"SELECT count(*) FROM {table.name}")).scalar_one()
        assert [s.name for s in queries.list_services(session)] == ["shop"]
        assert queries.service_briefs(session) == [queries.ServiceBrief("shop", "healthy", False)]
        assert queries.overview(session, datetime.now(UTC)).total_services == 1
        assert len(queries.logs_frame(session, queries.LogFilter(limit=10))) >= 0
        assert storage_queries.storage_frame(session, datetime.now(UTC), 7) is not None


def test_a_partition_made_after_the_migrations_is_readable(dashboard: sessionmaker[Session],
                                                           sessions: sessionmaker[Session]):
    day = date(2099, 12, 31)
    name = partitions.partition_name(day)
    try:
        with sessions.begin() as writer:
            assert partitions.create_day(writer, day)
            writer.execute(text(f"INSERT INTO {name} (service_name, \"timestamp\", bucket_seconds, request_count, "
                                "error_count, instances_scraped) VALUES ('shop', '2099-12-31T12:00:00Z', 5, 3, 0, 1)"))
        with dashboard() as session:
            assert session.execute(text(f"SELECT sum(request_count) FROM {name}")).scalar_one() == 3
            listed = storage_queries.storage_frame(session, datetime.now(UTC), 7)
            assert listed is not None
    finally:
        with sessions.begin() as writer:
            writer.execute(text(f"DROP TABLE IF EXISTS {name}"))


@pytest.fixture
def no_createrole_database(database_url: str, clean_db: Engine) -> Iterator[str]:
    """A database owned and migrated by a login user that may not create roles."""
    suffix = uuid.uuid4().hex[:8]
    user, name = f"mm_plain_{suffix}", f"mm_plain_db_{suffix}"
    admin = make_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=None)
    with admin.connect() as c:
        c.execute(text(f'CREATE ROLE "{user}" LOGIN NOCREATEROLE'))
        c.execute(text(f'CREATE DATABASE "{name}" OWNER "{user}"'))
    url = make_url(database_url).set(database=name, username=user, password=None)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        drop_database(admin, name)
        with admin.connect() as c:
            c.execute(text(f'DROP ROLE IF EXISTS "{user}"'))
        admin.dispose()


def test_without_createrole_the_migrations_warn_and_the_dashboard_still_cannot_write(
        no_createrole_database: str, caplog: pytest.LogCaptureFixture):
    owner = make_engine(no_createrole_database)
    try:
        try:
            with caplog.at_level(logging.WARNING):
                migrate(owner)
        except DBAPIError as exc:  # pragma: no cover - a server that refuses the login
            pytest.skip(f"the test server does not let a new role log in: {exc.orig}")
        assert any("no read-only role" in r.getMessage() for r in caplog.records)
        reader = make_reader_engine(no_createrole_database)
        try:
            with caplog.at_level(logging.WARNING), reader.connect() as c:
                assert c.execute(text("SELECT count(*) FROM services")).scalar_one() == 0
                with pytest.raises(DBAPIError) as refused:
                    c.execute(text(WRITES["insert"]))
            assert sqlstate(refused.value) == READ_ONLY_TRANSACTION
            assert any("read-only transactions" in r.getMessage() for r in caplog.records)
        finally:
            reader.dispose()
    finally:
        owner.dispose()
