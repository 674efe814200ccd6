"""An SQLAlchemy asyncio dialect for SQLite that runs each statement inline on the event loop.

Why: the stock ``aiosqlite`` driver runs every statement on a helper thread and hands the
result back through the loop. In embedded mode a service transaction is a handful of
statements against a local WAL file that each take tens of microseconds, so the two
thread hops per statement (and the GIL hand-offs they cost under load) dominated: the one
connection a SQLite database allows was busy waiting for hops, not for SQLite. Running
the statements inline removes the hops; a statement blocks the loop only as long as
SQLite itself takes (no fsync on commit with ``synchronous=NORMAL`` in WAL mode).

The shim below offers the small part of aiosqlite's API that SQLAlchemy's aiosqlite
adapter uses, with coroutines that complete without suspending. It is used only for
file databases of embedded mode; PostgreSQL goes through asyncpg as before.
"""

from __future__ import annotations

import sqlite3
import types
from collections.abc import Callable, Generator, Iterable
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)

DRIVER = "imarcinline"


class _Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> _Cursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, seq: Iterable[Any]) -> _Cursor:
        self._cursor.executemany(sql, seq)
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size or self._cursor.arraysize)

    async def close(self) -> None:
        self._cursor.close()


class _NoThread:
    daemon = True


class _ImmediateQueue:
    """Stands in for aiosqlite's request queue: runs the function at once."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn

    def put_nowait(self, item: tuple[Any, Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as e:  # handed to the awaiting adapter
            future.set_exception(e)


class _Connection:
    def __init__(self, database: str, **kwargs: Any) -> None:
        kwargs.pop("loop", None)
        kwargs.pop("iter_chunk_size", None)
        kwargs.setdefault("check_same_thread", False)
        self._args = (database, kwargs)
        self._conn: sqlite3.Connection | None = None
        self._thread = _NoThread()
        self._tx = _ImmediateQueue(self)

    def __await__(self) -> Generator[Any, None, _Connection]:
        database, kwargs = self._args
        self._conn = sqlite3.connect(database, **kwargs)
        return self
        yield  # pragma: no cover - makes this a generator without suspending

    @property
    def _connection(self) -> sqlite3.Connection | None:
        return self._conn

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("no active connection")
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self.conn.isolation_level

    def cursor(self) -> _Cursor:
        return _Cursor(self.conn.cursor())

    async def commit(self) -> None:
        self.conn.commit()

    async def rollback(self) -> None:
        self.conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self.conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _module() -> types.ModuleType:
    mod = types.ModuleType("imarc_sqlite_inline")
    for name in (
        "DatabaseError",
        "Error",
        "IntegrityError",
        "NotSupportedError",
        "OperationalError",
        "ProgrammingError",
        "sqlite_version",
        "sqlite_version_info",
    ):
        setattr(mod, name, getattr(sqlite3, name))
    mod.Connection = _Connection  # type: ignore[attr-defined]
    mod.connect = _Connection  # type: ignore[attr-defined]
    mod.__version__ = "1.0"  # type: ignore[attr-defined]
    return mod


class SQLiteDialect_inline(SQLiteDialect_aiosqlite):
    driver = DRIVER
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> AsyncAdapt_aiosqlite_dbapi:
        return AsyncAdapt_aiosqlite_dbapi(_module(), sqlite3)


registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialect_inline")
