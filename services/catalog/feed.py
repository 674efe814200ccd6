"""The mirror feed's storage: append in the applying transaction, number after commit, read.

Gap-free under concurrent writers: a consumer appends its entry with no position in the
transaction that applied the change, so an entry exists only if the change committed.
:func:`sequence` then numbers committed, unnumbered entries 1, 2, 3... in one transaction
that first locks the ``feed_head`` row; sequencers therefore run one after another and each
commits numbers above every number committed before it. A reader (``read``) first takes the
committed head and then reads up to it, so it never passes a number that is filled in later.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.catalog.domain.feed import SERIES_KINDS, cursor
from services.catalog.models import feed, feed_head
from services.common.db import Database

#: the most entries one sequencer transaction numbers
SEQUENCE_BATCH = 5000


async def append(session: AsyncSession, entry: dict[str, Any]) -> None:
    """Stage ``entry`` in the transaction that applied its change (numbered after commit)."""
    await session.execute(
        insert(feed).values(
            kind=entry["type"],
            collection=entry["collection"],
            subject=entry["subject"],
            time=datetime.fromisoformat(entry["time"]),
            entry=entry,
        )
    )


async def series_version(session: AsyncSession, uid: str) -> int:
    """The version the next publication of series ``uid`` will be (1 for the first)."""
    n = await session.scalar(
        select(func.count()).where(feed.c.subject == uid, feed.c.kind.in_(SERIES_KINDS))
    )
    return int(n or 0) + 1


async def last_attribution(session: AsyncSession, collection: str) -> dict[str, Any] | None:
    """The attribution of the newest entry of ``collection`` (for a withdrawal's tombstone)."""
    row = await session.scalar(
        select(feed.c.entry)
        .where(feed.c.collection == collection, feed.c.kind != "series.withdrawn")
        .order_by(feed.c.id.desc())
        .limit(1)
    )
    return None if row is None else dict(row["attribution"])


async def sequence(db: Database) -> int:
    """Number the committed entries that have no position yet; returns how many."""
    async with db.session() as s, s.begin():
        # the first statement writes: it takes the head's row lock (PostgreSQL) or the
        # database's write lock (SQLite) before anything is read
        await s.execute(update(feed_head).where(feed_head.c.id == 1).values(id=1))
        top = int(await s.scalar(select(feed_head.c.position).where(feed_head.c.id == 1)) or 0)
        ids = (
            await s.scalars(
                select(feed.c.id)
                .where(feed.c.position.is_(None))
                .order_by(feed.c.id)
                .limit(SEQUENCE_BATCH)
            )
        ).all()
        if not ids:
            return 0
        await s.execute(
            update(feed).where(feed.c.id == bindparam("_id")).values(position=bindparam("_pos")),
            [{"_id": i, "_pos": top + n} for n, i in enumerate(ids, 1)],
        )
        await s.execute(
            update(feed_head).where(feed_head.c.id == 1).values(position=top + len(ids))
        )
    return len(ids)


async def head(conn: AsyncConnection) -> int:
    return int(await conn.scalar(select(feed_head.c.position).where(feed_head.c.id == 1)) or 0)


async def read(
    conn: AsyncConnection, after: int, limit: int, scope: Sequence[str] | None
) -> tuple[list[dict[str, Any]], int]:
    """Up to ``limit`` entries after position ``after`` of the collections in ``scope``
    (None: all), and the cursor position to continue after."""
    top = await head(conn)
    stmt = (
        select(feed.c.position, feed.c.entry)
        .where(feed.c.position > after, feed.c.position <= top)
        .order_by(feed.c.position)
        .limit(limit)
    )
    if scope is not None:
        stmt = stmt.where(feed.c.collection.in_(scope))
    rows = (await conn.execute(stmt)).all()
    entries = [{"cursor": cursor(r.position), **r.entry} for r in rows]
    last = rows[-1].position if len(rows) == limit else max(top, after)
    return entries, last


async def unpushed(conn: AsyncConnection, limit: int) -> tuple[int, list[tuple[int, Any]]]:
    """The pushed mark and the numbered entries after it (for the feed exchange)."""
    pushed = int(await conn.scalar(select(feed_head.c.pushed).where(feed_head.c.id == 1)) or 0)
    rows = (
        await conn.execute(
            select(feed.c.position, feed.c.entry)
            .where(feed.c.position > pushed)
            .order_by(feed.c.position)
            .limit(limit)
        )
    ).all()
    return pushed, [(r.position, r.entry) for r in rows]


async def mark_pushed(db: Database, position: int) -> None:
    async with db.session() as s, s.begin():
        await s.execute(
            update(feed_head)
            .where(feed_head.c.id == 1, feed_head.c.pushed < position)
            .values(pushed=position)
        )
