"""The catalog's use cases: keep the public index in step with publications and withdrawals.

Each runs in the unit of work that records the event in the inbox (exactly one effect per
event id) and emits nothing. Delivery is at least once and not strictly ordered (a retried
message may arrive after a newer one), so every write is guarded by the CloudEvents
``time`` of the event that made it: an older publication never replaces a newer one or
undoes a later withdrawal, and an older withdrawal never hides a newer publication.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import RowMapping, Table, and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.catalog.domain.indexing import (
    OWNER,
    PATIENT_KEY,
    STUDY_KEY,
    SeriesIndex,
    index_series,
)
from services.catalog.models import (
    collections,
    instances,
    patients,
    series,
    shared_cart_series,
    shared_carts,
    studies,
    withdrawals,
)
from services.common.app import Conflict, DomainError
from services.common.db import as_utc, dialect_of
from services.common.events import SeriesIndexed, SeriesPublished, SeriesWithdrawn
from services.common.messaging import UnitOfWork
from services.common.persistence import insert_ignore, upsert

log = logging.getLogger("imarc.catalog")

# Rows per INSERT batch: large series (thousands of slices) go in a few round trips.
INSERT_BATCH = 1000

Owner = Mapping[str, str]  # collection, patient_id, study_instance_uid of a series


async def series_published(
    uow: UnitOfWork, p: SeriesPublished, at: datetime
) -> SeriesIndexed | None:
    """Index a published series; a republication replaces the series and its instances.

    Returns what the public index now holds of it, or None when the publication was
    older than what is indexed (or than its withdrawal) and changed nothing."""
    # Validating and reading thousands of headers is CPU work: keep it off the event loop.
    idx = await asyncio.to_thread(index_series, p, at)
    if not await index(uow.session, idx):
        return None
    return SeriesIndexed(
        collection=idx.series["collection"],
        series_instance_uid=idx.series["series_instance_uid"],
        study_instance_uid=idx.series["study_instance_uid"],
        patient_id=idx.series["patient_id"],
        released_at=p.released_at,
        instances=len(idx.instances),
    )


async def index(session: AsyncSession, idx: SeriesIndex) -> bool:
    """Put one series' rows in the index (see :func:`series_published`); False when an
    older publication was ignored."""
    uid = idx.series["series_instance_uid"]
    published_at = idx.series["published_at"]
    await _lock_series(session, uid)
    withdrawn_at = await session.scalar(
        select(withdrawals.c.withdrawn_at).where(withdrawals.c.series_instance_uid == uid)
    )
    if withdrawn_at is not None and withdrawn_at > published_at:
        log.info("ignoring publication of %s older than its withdrawal", uid)
        return False
    current = await _indexed(session, uid)
    if current is not None and current["published_at"] > published_at:
        log.info("ignoring publication of %s older than the one indexed", uid)
        return False

    # The publication carries the collection record: enough for a collection the catalog
    # has not heard of yet. collection.updated stays the authority for changes.
    await insert_ignore(session, collections, [idx.collection], key=("name",))
    if current is not None:
        await _remove_series(session, uid)
    if withdrawn_at is not None:
        await session.execute(delete(withdrawals).where(withdrawals.c.series_instance_uid == uid))
    await upsert(session, patients, [idx.patient], key=PATIENT_KEY)
    await upsert(session, studies, [idx.study], key=STUDY_KEY)
    await session.execute(insert(series).values(**idx.series))
    for i in range(0, len(idx.instances), INSERT_BATCH):
        await session.execute(insert(instances), idx.instances[i : i + INSERT_BATCH])
    await _refresh_parents(session, idx.owner, publishing=True)
    if current is not None and _owner(current) != idx.owner:
        await _refresh_parents(session, _owner(current))  # it moved: recount where it was
    return True


async def series_withdrawn(uow: UnitOfWork, p: SeriesWithdrawn, at: datetime) -> bool:
    """Remove a withdrawn series from every listing, leaving a tombstone. False when the
    withdrawal was older than the publication indexed (nothing changed)."""
    session = uow.session
    uid = p.series_instance_uid
    at = as_utc(at)
    await _lock_series(session, uid)
    current = await _indexed(session, uid)
    if current is not None and current["published_at"] > at:
        log.info("ignoring withdrawal of %s older than its publication", uid)
        return False
    tombstone = {
        "series_instance_uid": uid,
        "collection": p.collection,
        "reason": p.reason,
        "withdrawn_at": at,
    }
    await upsert(
        session, withdrawals, [tombstone], key=("series_instance_uid",), newer_than="withdrawn_at"
    )
    if current is None:
        return True
    if current["collection"] != p.collection:
        log.warning(
            "withdrawal of %s names collection %s but it is indexed in %s; withdrawing it",
            uid, p.collection, current["collection"],
        )  # fmt: skip
    await _remove_series(session, uid)
    await _refresh_parents(session, _owner(current))
    return True


# -- shared carts -------------------------------------------------------------------------


class CartExists(Conflict):
    pass


class UnknownSeries(DomainError):
    status = 400


def cart_name() -> str:
    """A new cart's name, as NBIA makes them (``nbia-`` and 17 digits)."""
    return f"nbia-{secrets.randbelow(10**17):017d}"


async def share_cart(
    uow: UnitOfWork, owner: str, name: str, uids: Sequence[str], visible: set[str]
) -> None:
    """Save a named list of series for anyone to open with getContentsByName. Every series
    must be published and visible to the one sharing it (``visible``)."""
    missing = [u for u in uids if u not in visible]
    if missing:
        raise UnknownSeries(
            f"{len(missing)} of the {len(uids)} series are not in the catalog or not "
            f"visible to you (the first: {missing[0]}); share only published series you may see"
        )
    inserted = await insert_ignore(
        uow.session,
        shared_carts,
        [{"name": name, "owner": owner, "created_at": datetime.now(UTC)}],
        key=("name",),
    )
    if not inserted:
        raise CartExists(f"a shared cart named {name} exists already; choose another name")
    rows = [{"name": name, "position": i, "series_instance_uid": uid} for i, uid in enumerate(uids)]
    await uow.session.execute(insert(shared_cart_series), rows)


# -- helpers -------------------------------------------------------------------------------


async def _lock_series(session: AsyncSession, uid: str) -> None:
    """Serialise publish and withdraw of one series across competing consumers, so that
    their time guards compare against committed state. (SQLite has a single writer.)"""
    if dialect_of(session) == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(uid, 0))))


async def _indexed(session: AsyncSession, uid: str) -> RowMapping | None:
    """The indexed series' owner and publication time, or None."""
    stmt = select(*(series.c[k] for k in OWNER), series.c.published_at).where(
        series.c.series_instance_uid == uid
    )
    return (await session.execute(stmt)).mappings().first()


def _owner(row: RowMapping) -> dict[str, str]:
    return {k: row[k] for k in OWNER}


async def _remove_series(session: AsyncSession, uid: str) -> None:
    await session.execute(delete(instances).where(instances.c.series_instance_uid == uid))
    await session.execute(delete(series).where(series.c.series_instance_uid == uid))


async def _refresh(
    session: AsyncSession, table: Table, match: Mapping[str, str], *, publishing: bool
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
    await _refresh(session, patients, {k: owner[k] for k in PATIENT_KEY}, publishing=publishing)
    await _refresh(session, studies, {k: owner[k] for k in STUDY_KEY}, publishing=publishing)
