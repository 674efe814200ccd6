"""Databases: SQLAlchemy 2 async engines (aiosqlite, asyncpg) and Alembic migrations.

Every service owns its tables. On PostgreSQL a service keeps them in a schema named
after it (the connection's ``search_path``); in embedded mode each service has its own
SQLite file. No service opens another service's database.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, MetaData, TypeDecorator, event, func, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from services.common.accounting import SQL_STATEMENTS, SQL_TRANSACTIONS


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite returns naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one (SQLite hands them back where a column's type is
    not known, e.g. in a union) is taken to be UTC, as everything stored is."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def dialect_of(session: AsyncSession) -> str:
    """``postgresql`` or ``sqlite``: the backend a session talks to."""
    return str(session.get_bind().dialect.name)


def month_of(column: Any, dialect: str) -> Any:
    """``YYYY-MM`` of a UTC timestamp column, in SQL, on either backend (for reports that
    count by calendar month)."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)


def conflict_insert(dialect: str, table: Any) -> Any:
    """An ``INSERT`` that takes ``ON CONFLICT`` clauses on either backend: the one place
    that chooses between PostgreSQL's and SQLite's forms, for every service's upserts."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def json_text(value: Any) -> str:
    """JSON columns are written with orjson (one fast JSON library for events and rows)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def private_sqlite(path: Path) -> None:
    """Create a SQLite file readable by its owner only (0600; its -wal and -shm files take
    the same mode): it holds original PatientIDs and file names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if f.exists():
            f.chmod(0o600)


class Database:
    """One service's database: an async engine, a session factory and its migrations."""

    def __init__(self, url: str, schema: str) -> None:
        self.url = make_url(url)
        self.schema = schema
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            from services.common import sqlite_inline

            if self.url.drivername == "sqlite+aiosqlite":
                # statements run inline on the loop: see services/common/sqlite_inline.py
                self.url = self.url.set(drivername=f"sqlite+{sqlite_inline.DRIVER}")
            if self.url.database and self.url.database != ":memory:":
                private_sqlite(Path(self.url.database))
            # One connection per file: SQLite has one writer, and a shared connection
            # avoids "database is locked" on read-then-write transactions.
            kwargs.update(pool_size=1, max_overflow=0, pool_timeout=120)
        else:
            kwargs.update(
                connect_args={"server_settings": {"search_path": schema}},
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
            )
        kwargs.update(json_serializer=json_text, json_deserializer=orjson.loads)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        statements, commits = SQL_STATEMENTS.labels(schema), SQL_TRANSACTIONS.labels(schema)
        event.listen(self.engine.sync_engine, "before_cursor_execute", lambda *_: statements.inc())
        event.listen(self.engine.sync_engine, "commit", lambda *_: commits.inc())
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> AsyncSession:
        return self.sessions()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def migrate(self, migrations_dir: Path) -> None:
        """Apply the service's Alembic migrations up to head (idempotent)."""
        if not self.is_sqlite:
            admin = create_async_engine(self.url)
            try:
                async with admin.begin() as conn:
                    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            finally:
                await admin.dispose()
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade, migrations_dir)

    async def create_all(self, metadata: MetaData) -> None:
        """Create tables directly (tests of mechanisms that have no migrations)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _upgrade(connection: Connection, migrations_dir: Path) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def run_migrations_online(target_metadata: MetaData) -> None:
    """Body of every service's ``migrations/env.py``: migrate on the given connection."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("migrations run through Database.migrate(), e.g. `imarc migrate all`")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
