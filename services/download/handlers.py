"""download's event handlers (its index of published series and collection access) and
the request-side look-ups and download log."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import conflict_insert, dialect_of
from services.common.dicom_json import int_at
from services.common.events import CollectionUpdated, Event, SeriesPublished, SeriesWithdrawn
from services.common.messaging import UnitOfWork
from services.common.metrics import DOWNLOAD_BYTES, DOWNLOADS
from services.common.projection import project_collection
from services.common.security import Principal
from services.common.service import ServiceContext
from services.download.domain import (
    ACQUISITION_NUMBER,
    INSTANCE_NUMBER,
    Image,
    nbia_order,
)
from services.download.models import Collection, Download, Instance, Series

log = logging.getLogger("imarc.download")


def _insert_ignore(session: AsyncSession, table: Table, values: dict[str, Any]) -> Any:
    return conflict_insert(dialect_of(session), table).values(**values).on_conflict_do_nothing()


def _collection_values(p: CollectionUpdated, at: datetime) -> dict[str, Any]:
    return {
        "name": p.name,
        "access": p.access,
        "licence_id": p.licence.id,
        "licence_name": p.licence.name,
        "licence_url": p.licence.url,
        "updated_at": at,
    }


# -- consumers -------------------------------------------------------------------------


async def on_collection_updated(event: Event, uow: UnitOfWork) -> list[Event]:
    """Keep the collection's record (the newest announcement wins)."""
    await project_collection(uow.session, Collection, event)
    return []


async def on_series_published(event: Event, uow: UnitOfWork) -> list[Event]:
    """Index (or re-index) a published series; its instance set is replaced."""
    s = uow.session
    p = event.payload(SeriesPublished)
    uid = p.series_instance_uid
    # The event carries qc's copy of the collection; collection.updated stays the
    # authority, so it only fills in a collection not seen yet.
    await s.execute(
        _insert_ignore(
            s,
            Collection.__table__,  # type: ignore[arg-type]
            _collection_values(p.collection, datetime(1970, 1, 1, tzinfo=UTC)),
        )
    )
    await s.execute(
        _insert_ignore(
            s,
            Series.__table__,  # type: ignore[arg-type]
            {
                "series_instance_uid": uid,
                "collection": p.collection.name,
                "study_instance_uid": p.study_instance_uid,
                "patient_id": p.patient_id,
            },
        )
    )
    series = await s.get(Series, uid, with_for_update=True)
    assert series is not None
    newest = max((t for t in (series.released_at, series.withdrawn_at) if t), default=None)
    if newest is not None and p.released_at <= newest:
        log.info("ignoring an older publication of series %s", uid)
        return []
    series.collection = p.collection.name
    series.study_instance_uid, series.patient_id = p.study_instance_uid, p.patient_id
    series.released_at, series.withdrawn_at = p.released_at, None
    await s.execute(delete(Instance).where(Instance.series_instance_uid == uid))
    s.add_all(
        Instance(
            series_instance_uid=uid,
            sop_instance_uid=i.sop_instance_uid,
            key=i.key,
            size=i.size,
            sha256=i.sha256,
            instance_number=int_at(i.header, INSTANCE_NUMBER),
            acquisition_number=int_at(i.header, ACQUISITION_NUMBER),
        )
        for i in {i.sop_instance_uid: i for i in p.instances}.values()
    )
    return []


async def on_series_withdrawn(event: Event, uow: UnitOfWork) -> list[Event]:
    """Stop serving a series. The row stays as a tombstone: a publication delivered late
    (another queue) cannot bring back what was withdrawn after it."""
    s = uow.session
    p = event.payload(SeriesWithdrawn)
    await s.execute(
        _insert_ignore(
            s,
            Series.__table__,  # type: ignore[arg-type]
            {"series_instance_uid": p.series_instance_uid, "collection": p.collection},
        )
    )
    series = await s.get(Series, p.series_instance_uid, with_for_update=True)
    assert series is not None
    if series.released_at is not None and event.time <= series.released_at:
        return []  # withdrawn before a later re-publication
    series.withdrawn_at = max(event.time, series.withdrawn_at or event.time)
    await s.execute(delete(Instance).where(Instance.series_instance_uid == p.series_instance_uid))
    return []


# -- requests --------------------------------------------------------------------------


@dataclass(frozen=True)
class Readable:
    """A series the caller may download, with its licence and ordered images."""

    series_instance_uid: str
    collection: str
    licence_name: str
    licence_url: str
    images: list[Image]


async def readable_series(
    ctx: ServiceContext, principal: Principal, uid: str, sop_instance_uid: str | None = None
) -> Readable | None:
    """The series (or the one instance of it) if it is published and the caller may
    read it; None otherwise (unknown and forbidden are not told apart)."""
    async with ctx.db.session() as s:
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
        Image(i.sop_instance_uid, i.key, i.size, i.sha256, i.instance_number, i.acquisition_number)
        for i in instances
    )
    return Readable(
        series.series_instance_uid, coll.name, coll.licence_name, coll.licence_url, images
    )


async def recent_downloads(ctx: ServiceContext, collection: str, limit: int) -> list[Download]:
    async with ctx.db.session() as s:
        q = (
            select(Download)
            .where(Download.collection == collection)
            .order_by(Download.at.desc(), Download.id.desc())
            .limit(limit)
        )
        return list((await s.scalars(q)).all())


async def record_download(
    ctx: ServiceContext,
    principal: Principal,
    series: Readable,
    *,
    kind: str,
    dicom_bytes: int,
    complete: bool,
    sop_instance_uid: str | None = None,
) -> None:
    """Log a download (also a partial one) and count it in the metrics. A log that
    cannot be written is reported, never turned into a failed download."""
    DOWNLOAD_BYTES.labels(series.collection).inc(dicom_bytes)
    if complete:
        DOWNLOADS.labels(series.collection, kind).inc()
    try:
        async with ctx.db.session() as s, s.begin():
            s.add(
                Download(
                    subject=principal.subject,
                    collection=series.collection,
                    series_instance_uid=series.series_instance_uid,
                    sop_instance_uid=sop_instance_uid,
                    kind=kind,
                    bytes=dicom_bytes,
                    complete=complete,
                    at=datetime.now(UTC),
                )
            )
    except Exception:
        log.exception("could not log the download of series %s", series.series_instance_uid)
