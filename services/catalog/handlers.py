"""Event handlers: keep the catalog's read model in step with publications, withdrawals and
collection records. Each runs in one transaction with the inbox record (exactly one effect
per event id) and emits nothing.

Delivery is at least once and not strictly ordered (a retried message may arrive after a
newer one), so every write is guarded by the CloudEvents ``time`` of the event that made it:
an older publication never replaces a newer one or undoes a later withdrawal, and an older
withdrawal never hides a newer publication.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.catalog import domain
from services.catalog.models import collections, instances, patients, series, studies, withdrawals
from services.common.db import conflict_insert
from services.common.events import Event, SeriesPublished, SeriesWithdrawn
from services.common.messaging import UnitOfWork
from services.common.projection import project_collection

log = logging.getLogger("imarc.catalog")

# Rows per INSERT batch: large series (thousands of slices) go in a few round trips.
INSERT_BATCH = 1000


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


def _insert(session: AsyncSession, table: Table) -> Any:
    return conflict_insert(_dialect(session), table)


async def _lock_series(session: AsyncSession, uid: str) -> None:
    """Serialise publish and withdraw of one series across competing consumers, so that
    their time guards compare against committed state. (SQLite has a single writer.)"""
    if _dialect(session) == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(uid, 0))))


async def _upsert(
    session: AsyncSession, table: Table, row: dict[str, Any], keys: Sequence[str], where: Any = None
) -> None:
    stmt = _insert(session, table).values(**row)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: stmt.excluded[c] for c in row if c not in keys},
        where=where,
    )
    await session.execute(stmt)


Owner = dict[str, Any]  # collection, patient_id, study_instance_uid of a series


async def _refresh(
    session: AsyncSession, table: Table, match: dict[str, str], *, publishing: bool
) -> None:
    """Recount the visible series of a patient or study; forget it when none is left.

    ``publishing``: the row was just upserted for a series being published, so this
    transaction holds its lock and it cannot be left empty."""
    cond = and_(*(table.c[k] == v for k, v in match.items()))
    in_series = and_(*(series.c[k] == v for k, v in match.items()))
    if not publishing:
        # Lock the row before counting: a concurrent publication of a sibling series then
        # commits first and is counted (PostgreSQL; SQLite ignores FOR UPDATE, one writer).
        await session.execute(select(*table.primary_key.columns).where(cond).with_for_update())
    await session.execute(
        update(table)
        .where(cond)
        .values(
            series_count=select(func.count()).where(in_series).scalar_subquery(),
            last_released_at=select(func.max(series.c.released_at))
            .where(in_series)
            .scalar_subquery(),
        )
    )
    if not publishing:
        await session.execute(delete(table).where(cond, table.c.series_count == 0))


async def _refresh_parents(
    session: AsyncSession, owner: Owner, *, publishing: bool = False
) -> None:
    # patient before study, the order publication upserts (and so locks) them in
    await _refresh(
        session,
        patients,
        {"collection": owner["collection"], "patient_id": owner["patient_id"]},
        publishing=publishing,
    )
    await _refresh(
        session, studies, {"study_instance_uid": owner["study_instance_uid"]}, publishing=publishing
    )


async def _indexed(session: AsyncSession, uid: str) -> Any:
    """The indexed series' owner and publication time, or None."""
    return (
        await session.execute(
            select(
                series.c.collection, series.c.patient_id, series.c.study_instance_uid,
                series.c.published_at,
            ).where(series.c.series_instance_uid == uid)
        )
    ).first()  # fmt: skip


async def _remove_series(session: AsyncSession, uid: str) -> None:
    await session.execute(delete(instances).where(instances.c.series_instance_uid == uid))
    await session.execute(delete(series).where(series.c.series_instance_uid == uid))


OWNER = ("collection", "patient_id", "study_instance_uid")


def _owner(row: Any) -> Owner:
    return {k: row._mapping[k] for k in OWNER}


def _prepare(event: Event) -> domain.SeriesIndex:
    return domain.index_series(event.payload(SeriesPublished), event.time)


async def on_series_published(event: Event, uow: UnitOfWork) -> list[Event]:
    """Index a published series; a republication replaces the series and its instances."""
    session = uow.session
    # Validating and reading thousands of headers is CPU work: keep it off the event loop.
    idx = await asyncio.to_thread(_prepare, event)
    uid = idx.series["series_instance_uid"]
    published_at = idx.series["published_at"]
    await _lock_series(session, uid)

    withdrawn_at = await session.scalar(
        select(withdrawals.c.withdrawn_at).where(withdrawals.c.series_instance_uid == uid)
    )
    if withdrawn_at is not None and domain.utc(withdrawn_at) > published_at:
        log.info("ignoring publication of %s older than its withdrawal", uid)
        return []
    current = await _indexed(session, uid)
    if current is not None and domain.utc(current.published_at) > published_at:
        log.info("ignoring publication of %s older than the one indexed", uid)
        return []

    # The publication carries the collection record: enough for a collection the catalog
    # has not heard of yet. collection.updated stays the authority for changes.
    await session.execute(
        _insert(session, collections)
        .values(**idx.collection)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    if current is not None:
        await _remove_series(session, uid)
    if withdrawn_at is not None:
        await session.execute(delete(withdrawals).where(withdrawals.c.series_instance_uid == uid))
    await _upsert(session, patients, idx.patient, ("collection", "patient_id"))
    await _upsert(session, studies, idx.study, ("study_instance_uid",))
    await session.execute(insert(series).values(**idx.series))
    for i in range(0, len(idx.instances), INSERT_BATCH):
        await session.execute(insert(instances), idx.instances[i : i + INSERT_BATCH])
    await _refresh_parents(session, idx.series, publishing=True)
    if current is not None and _owner(current) != {k: idx.series[k] for k in OWNER}:
        await _refresh_parents(session, _owner(current))  # it moved: recount where it was
    return []


async def on_series_withdrawn(event: Event, uow: UnitOfWork) -> list[Event]:
    """Remove a withdrawn series from every listing, leaving a tombstone."""
    session = uow.session
    p = event.payload(SeriesWithdrawn)
    uid = p.series_instance_uid
    at = domain.utc(event.time)
    await _lock_series(session, uid)
    current = await _indexed(session, uid)
    if current is not None and domain.utc(current.published_at) > at:
        log.info("ignoring withdrawal of %s older than its publication", uid)
        return []
    await _upsert(
        session,
        withdrawals,
        {
            "series_instance_uid": uid,
            "collection": p.collection,
            "reason": p.reason,
            "withdrawn_at": at,
        },
        ("series_instance_uid",),
        where=withdrawals.c.withdrawn_at < at,
    )
    if current is None:
        return []
    if current.collection != p.collection:
        log.warning(
            "withdrawal of %s names collection %s but it is indexed in %s; withdrawing it",
            uid, p.collection, current.collection,
        )  # fmt: skip
    await _remove_series(session, uid)
    await _refresh_parents(session, _owner(current))
    return []


async def on_collection_updated(event: Event, uow: UnitOfWork) -> list[Event]:
    """Keep the collection's record (the newest announcement wins)."""
    await project_collection(uow.session, collections, event)
    return []
