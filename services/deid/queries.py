"""deid's reads: profiles and their versions, held instances, audits, and the patient and
UID maps as pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from sqlalchemy import and_, or_, select

from services.common.app import NotFound
from services.common.db import Database
from services.deid.models import (
    Collection,
    Hold,
    Instance,
    PatientPseudonym,
    ProfileVersion,
    UidMapping,
)


def unknown_collection(collection: str) -> NotFound:
    return NotFound(
        f"collection {collection} is not known to deid; register it first "
        "(imarc collections create)"
    )


async def collection_exists(db: Database, collection: str) -> bool:
    async with db.session() as s:
        return await s.get(Collection, collection) is not None


async def known(db: Database, collection: str) -> None:
    """Raise NotFound when deid has not heard of ``collection``."""
    if not await collection_exists(db, collection):
        raise unknown_collection(collection)


async def no_profile(db: Database, collection: str) -> NotFound:
    """Why ``collection`` has no profile: unknown, or its first version is on its way."""
    if not await collection_exists(db, collection):
        return unknown_collection(collection)
    return NotFound(f"collection {collection} has no profile yet; retry shortly")


async def profile(db: Database, collection: str) -> ProfileVersion:
    """The collection's current profile version (NotFound if there is none)."""
    async with db.session() as s:
        row: ProfileVersion | None = await s.scalar(
            select(ProfileVersion)
            .where(ProfileVersion.collection == collection)
            .order_by(ProfileVersion.version.desc())
            .limit(1)
        )
    if row is None:
        raise await no_profile(db, collection)
    return row


async def profile_versions(db: Database, collection: str) -> list[ProfileVersion]:
    async with db.session() as s:
        rows = list(
            await s.scalars(
                select(ProfileVersion)
                .where(ProfileVersion.collection == collection)
                .order_by(ProfileVersion.version)
            )
        )
    if not rows:
        await known(db, collection)
    return rows


async def holds(db: Database, collection: str) -> list[Hold]:
    await known(db, collection)
    async with db.session() as s:
        rows = await s.scalars(
            select(Hold).where(Hold.collection == collection).order_by(Hold.held_at)
        )
        return list(rows)


async def hold(db: Database, instance_id: str) -> Hold | None:
    async with db.session() as s:
        return await s.get(Hold, instance_id)


async def instance(db: Database, instance_id: str) -> Instance | None:
    async with db.session() as s:
        return await s.get(Instance, instance_id)


async def map_pairs(
    db: Database, collection: str, which: Literal["patients", "uids"], page: int = 5000
) -> AsyncIterator[list[tuple[str, str]]]:
    """Pages of (old, new) pairs in (old, new) order, each read in its own short session
    so a slow download never holds a database connection. A PatientID may stand twice
    (two issuers), so a page continues after the last (old, new) pair."""
    if which == "patients":
        key, new, where = (
            PatientPseudonym.original_id,
            PatientPseudonym.pseudonym,
            PatientPseudonym.collection == collection,
        )
    else:
        key, new, where = UidMapping.old, UidMapping.new, UidMapping.collection == collection
    after: tuple[str, str] | None = None
    while True:
        query = select(key, new).where(where).order_by(key, new).limit(page)
        if after is not None:
            query = query.where(or_(key > after[0], and_(key == after[0], new > after[1])))
        async with db.session() as s:
            rows = [(str(a), str(b)) for a, b in (await s.execute(query)).all()]
        if not rows:
            return
        yield rows
        if len(rows) < page:
            return
        after = rows[-1]
