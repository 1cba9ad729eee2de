"""The database connection: one engine per process, transactions, and dialect-specific inserts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, Row, create_engine, event, exc, func, select, table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool


def make_engine(database_url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and one shared connection when in memory."""
    if database_url.startswith("sqlite"):
        in_memory = ":memory:" in database_url or database_url in ("sqlite://", "sqlite:///")
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if in_memory else None,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # No pre-ping: it costs a round trip per request. A connection that died is invalidated on
    # first use; that request answers 503 and HubSpot delivers it again.
    engine = create_engine(database_url, pool_size=5, max_overflow=10, pool_recycle=1800)
    _discard_connections_after_fork(engine)
    return engine


def _discard_connections_after_fork(engine: Engine) -> None:
    """Never use a pooled connection in a process other than the one that opened it.

    RQ forks its scheduler and gunicorn its workers; without this a child would share the parent's sockets
    (SQLAlchemy's documented recipe for pools and multiprocessing).
    """

    @event.listens_for(engine, "connect")
    def _remember_pid(_dbapi_connection: Any, record: Any) -> None:
        record.info["pid"] = os.getpid()

    @event.listens_for(engine, "checkout")
    def _check_pid(_dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get("pid") != os.getpid():
            record.dbapi_connection = proxy.dbapi_connection = None
            raise exc.DisconnectionError("connection belongs to another process")


class Database:
    """The engine and the ways the repositories use it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # One statement committed on its own: a single round trip on the hot path.
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    @classmethod
    def from_url(cls, database_url: str) -> Database:
        """Open the database at ``database_url``."""
        return cls(make_engine(database_url))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Open a session in a transaction that commits on success."""
        with self._sessions.begin() as session:
            yield session

    # One statement on its own: no BEGIN and COMMIT around it, so one round trip instead of three. For statements
    # built once (bound parameters only), so SQLAlchemy neither builds nor compiles them again.

    def rows(self, statement: Any, parameters: dict[str, Any] | None = None) -> list[Row[Any]]:
        """Run one query or a statement with RETURNING, committed on its own; return every row."""
        with self.autocommit.connect() as conn:
            return list(conn.execute(statement, parameters or {}))

    def row(self, statement: Any, parameters: dict[str, Any] | None = None) -> Row[Any] | None:
        """Run one query or a statement with RETURNING, committed on its own; return its first row (None: none)."""
        with self.autocommit.connect() as conn:
            return conn.execute(statement, parameters or {}).first()

    def write(self, statement: Any, parameters: dict[str, Any] | None = None) -> int:
        """Run one INSERT, UPDATE or DELETE committed on its own; return how many rows it matched."""
        with self.autocommit.connect() as conn:
            return int(conn.execute(statement, parameters or {}).rowcount)

    def insert(self, model: Any) -> Any:
        """Return an INSERT that knows ON CONFLICT (PostgreSQL and SQLite spell it alike)."""
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(model)
        if dialect == "sqlite":
            return sqlite.insert(model)
        raise RuntimeError(f"Unsupported database: {dialect}")

    def ping(self) -> None:
        """Run a trivial query (health checks)."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def count(self, table_name: str) -> int:
        """Return the number of rows of a table (operators, tests and benchmarks)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table(table_name))).scalar_one())

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
