"""the dashboard's read-only role: a NOLOGIN role per database with SELECT on every table, now and later

`mm_dashboard_<database>` (db.session.reader_role_sql) gets USAGE on the schema, SELECT on every table in it and,
by default privileges, on every table this user creates there later: the tables of later migrations and the daily
partitions db.partitions creates at run time. The role is granted to the migrating user, so the dashboard's
connections (same URL) can SET ROLE to it (db.session.make_reader_engine). A user that may not create roles or
grant this one gets a warning and no role: the dashboard then reads in read-only transactions alone.

Revision ID: 0013
Revises: 0012
"""

import logging

from alembic import op
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from db.session import reader_role_sql

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

log = logging.getLogger("db.migrations")
INSUFFICIENT_PRIVILEGE = "42501"
DUPLICATE_OBJECT = "42710"


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def upgrade() -> None:
    bind = op.get_bind()
    role, schema = bind.execute(text(f"SELECT {reader_role_sql()}, current_schema()")).one()
    quote = bind.dialect.identifier_preparer.quote_identifier
    q_role, q_schema = quote(role), quote(schema)
    try:
        with bind.begin_nested():
            if bind.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}) is None:
                try:
                    with bind.begin_nested():
                        bind.execute(text(f"CREATE ROLE {q_role} NOLOGIN"))
                except DBAPIError as exc:  # made meanwhile by another migrator of a database of the same name
                    if _sqlstate(exc) != DUPLICATE_OBJECT:
                        raise
            bind.execute(text(f"GRANT {q_role} TO CURRENT_USER"))
            bind.execute(text(f"GRANT USAGE ON SCHEMA {q_schema} TO {q_role}"))
            bind.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA {q_schema} TO {q_role}"))
            bind.execute(text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {q_schema} GRANT SELECT ON TABLES TO {q_role}"))
    except DBAPIError as exc:
        if _sqlstate(exc) != INSUFFICIENT_PRIVILEGE:
            raise
        log.warning("no read-only role %s for the dashboard: this database user may not create or grant it (%s). "
                    "The dashboard reads in read-only transactions alone; to give it the role, run the migrations "
                    "once as a user with CREATEROLE", role, str(exc.orig).strip().splitlines()[0])


def downgrade() -> None:
    bind = op.get_bind()
    role, schema = bind.execute(text(f"SELECT {reader_role_sql()}, current_schema()")).one()
    if bind.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}) is None:
        return
    quote = bind.dialect.identifier_preparer.quote_identifier
    q_role, q_schema = quote(role), quote(schema)
    bind.execute(text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {q_schema} REVOKE SELECT ON TABLES FROM {q_role}"))
    bind.execute(text(f"REVOKE SELECT ON ALL TABLES IN SCHEMA {q_schema} FROM {q_role}"))
    bind.execute(text(f"REVOKE USAGE ON SCHEMA {q_schema} FROM {q_role}"))
    bind.execute(text(f"DROP ROLE {q_role}"))
