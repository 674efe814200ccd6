"""Reads of download's index for the API (no writes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from services.common.db import Database, dialect_of, month_of
from services.common.security import ANONYMOUS, Principal
from services.download.domain import Image, Terms, nbia_order, new_file_names
from services.download.models import (
    Basket,
    BasketSeries,
    Collection,
    DownloadRecord,
    Instance,
    Series,
)
from services.download.schemas import SeriesSearch

NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Readable:
    """A series the caller may download, with its licence and ordered images."""

    series_instance_uid: str
    collection: str
    terms: Terms
    images: list[Image]
    released_at: datetime


def _image(i: Instance) -> Image:
    return Image(
        i.sop_instance_uid,
        i.key,
        i.size,
        i.sha256,
        i.instance_number,
        i.acquisition_number,
        i.crc32,
    )


def terms_of(coll: Collection) -> Terms:
    record = coll.record or {}
    return Terms(
        collection=coll.name,
        licence_name=coll.licence_name,
        licence_url=coll.licence_url,
        citation=str(record.get("citation") or ""),
        doi=str(record.get("doi") or ""),
        data_usage_policy=str(record.get("data_usage_policy") or ""),
        face_reconstructable=bool(record.get("face_reconstructable")),
        access=coll.access,
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
    images = nbia_order(_image(i) for i in instances)
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


async def search(db: Database, principal: Principal, criteria: SeriesSearch) -> list[str]:
    """The published series matching every given criterion that the caller may read,
    ordered by collection, patient, study and series. Text criteria match whole values,
    case-insensitively (as NBIA's v4 filters)."""
    q = (
        select(
            Series.series_instance_uid, Collection.name, Collection.access, Collection.licence_id
        )
        .join(Collection, Collection.name == Series.collection)
        .where(Series.withdrawn_at.is_(None), Series.released_at.is_not(None))
    )
    for column, value in (
        (Series.collection, criteria.collection),
        (Series.patient_id, criteria.patient_id),
        (Series.modality, criteria.modality),
        (Series.body_part, criteria.body_part),
    ):
        if value:
            q = q.where(func.upper(column) == value.strip().upper())
    if criteria.study_instance_uid:
        q = q.where(Series.study_instance_uid == criteria.study_instance_uid.strip())
    q = q.order_by(
        Series.collection, Series.patient_id, Series.study_instance_uid, Series.series_instance_uid
    )
    async with db.session() as s:
        rows = (await s.execute(q)).all()
    return [uid for uid, name, access, lic in rows if principal.can_read(name, access, lic)]


async def basket(db: Database, basket_id: str) -> list[str] | None:
    """The series of a basket in the order they were put in, or None for no such basket."""
    async with db.session() as s:
        if await s.get(Basket, basket_id) is None:
            return None
        rows = await s.scalars(
            select(BasketSeries.series_instance_uid)
            .where(BasketSeries.basket_id == basket_id)
            .order_by(BasketSeries.position)
        )
        return list(rows)


@dataclass(frozen=True)
class SeriesFiles:
    """A series a client may download, with what it needs to place and check each file."""

    series_instance_uid: str
    collection: str
    patient_id: str
    study_instance_uid: str
    terms: Terms
    names: list[str]
    images: list[Image]


async def series_files(
    db: Database, principal: Principal, uids: Sequence[str]
) -> tuple[list[SeriesFiles], list[str]]:
    """The series among ``uids`` the caller may download, and the others (unknown,
    withdrawn or restricted: not told apart)."""
    wanted = list(dict.fromkeys(uids))
    async with db.session() as s:
        rows = (
            await s.execute(
                select(Series, Collection)
                .join(Collection, Collection.name == Series.collection)
                .where(Series.series_instance_uid.in_(wanted), Series.withdrawn_at.is_(None))
            )
        ).all()
        readable = {
            series.series_instance_uid: (series, coll)
            for series, coll in rows
            if principal.can_read(coll.name, coll.access, coll.licence_id)
        }
        instances = (
            await s.scalars(select(Instance).where(Instance.series_instance_uid.in_(readable)))
        ).all()
    by_series: dict[str, list[Image]] = {}
    for i in instances:
        by_series.setdefault(i.series_instance_uid, []).append(_image(i))
    found, missing = [], []
    for uid in wanted:
        if uid not in readable or uid not in by_series:
            missing.append(uid)
            continue
        series, coll = readable[uid]
        images = nbia_order(by_series[uid])
        found.append(
            SeriesFiles(
                uid,
                coll.name,
                series.patient_id,
                series.study_instance_uid,
                terms_of(coll),
                new_file_names(images),
                images,
            )
        )
    return found, missing


async def readable_in_study(
    db: Database,
    principal: Principal,
    study: str,
    series: str | None = None,
    sop_instance_uid: str | None = None,
) -> list[Readable]:
    """The series of a study (or the one series, or the one instance) the caller may
    read; empty when there is none (unknown and forbidden are not told apart)."""
    q = select(Series.series_instance_uid).where(
        Series.study_instance_uid == study, Series.withdrawn_at.is_(None)
    )
    if series is not None:
        q = q.where(Series.series_instance_uid == series)
    async with db.session() as s:
        uids = list(await s.scalars(q.order_by(Series.series_instance_uid)))
    found = [await readable_series(db, principal, uid, sop_instance_uid) for uid in uids]
    return [r for r in found if r is not None]


#: what counts as a download of a whole series, and of one image
SERIES_KINDS = ("zip", "wado")
IMAGE_KINDS = ("single",)


@dataclass(frozen=True)
class Usage:
    #: (collection, month, series downloads, image downloads, bytes)
    collections: list[tuple[str, str, int, int, int]]
    #: (month, distinct logged-in users, anonymous downloads)
    users: list[tuple[str, int, int]]


async def usage(
    db: Database, start: datetime, end: datetime, collections: set[str] | None
) -> Usage:
    """Downloads in ``[start, end)`` by collection and calendar month, and distinct
    downloading users by month (across ``collections``, or all when None)."""
    d = DownloadRecord
    in_range = [d.at >= start, d.at < end]
    if collections is not None:
        in_range.append(d.collection.in_(sorted(collections)))
    async with db.session() as s:
        month = month_of(d.at, dialect_of(s))
        done = d.complete.is_(True)
        by_collection = await s.execute(
            select(
                d.collection,
                month,
                func.count().filter(done, d.kind.in_(SERIES_KINDS)),
                func.count().filter(done, d.kind.in_(IMAGE_KINDS)),
                func.coalesce(func.sum(d.bytes), 0),
            )
            .where(*in_range)
            .group_by(d.collection, month)
            .order_by(month, d.collection)
        )
        anonymous = d.subject == ANONYMOUS.subject
        by_month = await s.execute(
            select(
                month,
                func.count(func.distinct(d.subject)).filter(~anonymous),
                func.count().filter(anonymous),
            )
            .where(*in_range)
            .group_by(month)
            .order_by(month)
        )
        return Usage(
            [(c, m, int(sd), int(im), int(b)) for c, m, sd, im, b in by_collection.all()],
            [(m, int(u), int(a)) for m, u, a in by_month.all()],
        )
