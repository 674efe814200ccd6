"""Reads of download's index for the API (no writes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from services.common.db import Database
from services.common.security import Principal
from services.download.domain import Image, Terms, nbia_order
from services.download.models import Collection, DownloadRecord, Instance, Series

NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Readable:
    """A series the caller may download, with its licence and ordered images."""

    series_instance_uid: str
    collection: str
    terms: Terms
    images: list[Image]
    released_at: datetime


def terms_of(coll: Collection) -> Terms:
    record = coll.record or {}
    return Terms(
        collection=coll.name,
        licence_name=coll.licence_name,
        licence_url=coll.licence_url,
        citation=str(record.get("citation") or ""),
        doi=str(record.get("doi") or ""),
        data_usage_policy=str(record.get("data_usage_policy") or ""),
    )


async def readable_series(
    db: Database, principal: Principal, uid: str, sop_instance_uid: str | None = None
) -> Readable | None:
    """The series (or the one instance of it) if it is published and the caller may
    read it; None otherwise (unknown and forbidden are not told apart)."""
    async with db.session() as s:
        row = (
            await s.execute(
                select(Series, Collection)
                .join(Collection, Collection.name == Series.collection)
                .where(Series.series_instance_uid == uid, Series.withdrawn_at.is_(None))
            )
        ).first()
        if row is None:
            return None
        series, coll = row
        if not principal.can_read(coll.name, coll.access, coll.licence_id):
            return None
        q = select(Instance).where(Instance.series_instance_uid == uid)
        if sop_instance_uid is not None:
            q = q.where(Instance.sop_instance_uid == sop_instance_uid)
        instances = (await s.scalars(q)).all()
    if not instances:
        return None
    images = nbia_order(
        Image(
            i.sop_instance_uid,
            i.key,
            i.size,
            i.sha256,
            i.instance_number,
            i.acquisition_number,
            i.crc32,
        )
        for i in instances
    )
    return Readable(
        series.series_instance_uid,
        coll.name,
        terms_of(coll),
        images,
        series.released_at or NEVER,
    )


async def recent_downloads(db: Database, collection: str, limit: int) -> list[DownloadRecord]:
    async with db.session() as s:
        q = (
            select(DownloadRecord)
            .where(DownloadRecord.collection == collection)
            .order_by(DownloadRecord.at.desc(), DownloadRecord.id.desc())
            .limit(limit)
        )
        return list((await s.scalars(q)).all())
