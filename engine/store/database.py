"""The engine's PostgreSQL: DATABASE_URL's server, or an embedded one under DATA_DIR; migrated on open."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from contract.settings import Settings
from db.session import EmbeddedPostgres, conninfo, make_engine, make_session_factory, migrate

__all__ = ["Database"]


class Database:
    """An open, migrated database: its URL, its session factory; close() releases it."""

    def __init__(self, url: str, engine: Engine, embedded: EmbeddedPostgres | None = None) -> None:
        self.url = url
        self.embedded = embedded is not None
        self.sessions: sessionmaker[Session] = make_session_factory(engine)
        self._engine = engine
        self._server = embedded

    @classmethod
    def open(cls, settings: Settings) -> Database:
        """Connect to DATABASE_URL (or start the embedded server when it is unset) and apply the migrations."""
        server: EmbeddedPostgres | None = None
        if settings.database_url is None:
            server = EmbeddedPostgres(settings.data_dir)
            url = server.start()
        else:
            url = settings.database_url
        try:
            engine = make_engine(url)
            migrate(engine)
        except BaseException:
            if server is not None:
                server.stop()
            raise
        return cls(url, engine, server)

    @property
    def conninfo(self) -> str:
        """The URL as a libpq connection string (for connections outside SQLAlchemy)."""
        return conninfo(self.url)

    def close(self) -> None:
        """Close the pooled connections and stop the embedded server; the session factory reconnects if used."""
        self._engine.dispose()
        if self._server is not None:
            self._server.stop()  # idempotent: a second close() does nothing more
