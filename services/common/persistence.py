"""The persistence kit every service uses for idempotent writes on either backend.

* :func:`upsert` — ``INSERT … ON CONFLICT (key) DO UPDATE``, optionally only when the
  stored row is not newer than the incoming one (``newer_than``): the guard that makes a
  late, redelivered or replayed event harmless.
* :func:`insert_ignore` — ``INSERT … ON CONFLICT DO NOTHING``; returns the rows inserted.

Statements are built once per (table, dialect, shape) and cached: constructing an
``ON CONFLICT`` statement costs more than executing it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import conflict_insert, dialect_of

Row = Mapping[str, Any]


def table_of(model: Any) -> Table:
    """The Core ``Table`` of a Table or a mapped class."""
    table = getattr(model, "__table__", model)
    if not isinstance(table, Table):
        raise TypeError(f"{model!r} is neither a Table nor a mapped class")
    return table


@functools.lru_cache(maxsize=256)
def _upsert_statement(
    table: Table,
    dialect: str,
    key: tuple[str, ...],
    columns: tuple[str, ...],
    newer_than: str | None,
    keep: tuple[str, ...],
    add: tuple[str, ...] = (),
) -> Any:
    stmt = conflict_insert(dialect, table)
    where = None
    if newer_than is not None:
        # the stored row wins only when it is strictly newer: equal times re-apply (idempotent)
        where = table.c[newer_than] <= stmt.excluded[newer_than]
    updated = {
        c: table.c[c] + stmt.excluded[c] if c in add else stmt.excluded[c]
        for c in columns
        if c not in key and c not in keep
    }
    if not updated:
        return stmt.on_conflict_do_nothing(index_elements=list(key))
    return stmt.on_conflict_do_update(index_elements=list(key), set_=updated, where=where)


async def upsert(
    session: AsyncSession,
    model: Any,
    rows: Sequence[Row],
    *,
    key: Sequence[str],
    newer_than: str | None = None,
    keep: Sequence[str] = (),
    add: Sequence[str] = (),
) -> int:
    """Insert ``rows`` or update the rows with the same ``key``.

    ``newer_than`` names a timestamp column: an existing row whose value there is newer
    than the incoming row's is left as it is. ``keep`` names columns written on insert
    only (e.g. a first-seen time); ``add`` names counters the incoming value is added to
    (``count = count + excluded.count``). Every row must have the same columns.

    Returns the number of rows written — exact for one row (0 when ``newer_than`` kept
    the stored row); for several rows the drivers' executemany count is not reliable.
    """
    if not rows:
        return 0
    table = table_of(model)
    stmt = _upsert_statement(
        table,
        dialect_of(session),
        tuple(key),
        tuple(rows[0]),
        newer_than,
        tuple(keep),
        tuple(add),
    )
    params = dict(rows[0]) if len(rows) == 1 else [dict(r) for r in rows]
    result = await session.execute(stmt, params)
    return max(0, int(result.rowcount or 0))  # type: ignore[attr-defined]


#: Bound parameters per statement, below SQLite's and PostgreSQL's limits (32766 / 32767).
_MAX_PARAMS = 30_000


@functools.lru_cache(maxsize=256)
def _insert_ignore_statement(table: Table, dialect: str, key: tuple[str, ...] | None) -> Any:
    stmt = conflict_insert(dialect, table)
    return stmt.on_conflict_do_nothing(index_elements=list(key) if key else None)


async def insert_ignore(
    session: AsyncSession, model: Any, rows: Sequence[Row], *, key: Sequence[str] | None = None
) -> int:
    """Insert the ``rows`` that do not exist yet (by ``key``, or any unique constraint);
    returns how many were inserted.

    Rows go as multi-row ``VALUES`` statements (not executemany), so the count is exact on
    both backends."""
    if not rows:
        return 0
    table = table_of(model)
    dialect = dialect_of(session)
    if len(rows) == 1:  # the common case in consumers: one cached statement, bound values
        stmt = _insert_ignore_statement(table, dialect, tuple(key) if key else None)
        result = await session.execute(stmt, dict(rows[0]))
        return max(0, int(result.rowcount or 0))  # type: ignore[attr-defined]
    per = max(1, _MAX_PARAMS // max(1, len(rows[0])))
    inserted = 0
    for start in range(0, len(rows), per):
        stmt = conflict_insert(dialect, table).values([dict(r) for r in rows[start : start + per]])
        stmt = stmt.on_conflict_do_nothing(index_elements=list(key) if key else None)
        result = await session.execute(stmt)
        inserted += max(0, int(result.rowcount or 0))  # type: ignore[attr-defined]
    return inserted
