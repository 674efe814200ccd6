"""download's use cases: the index of published series kept from qc's events, and
sending a download (streamed, then logged and counted)."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete

from services.common.dicom_json import int_at, text
from services.common.events import SeriesPublished, SeriesWithdrawn
from services.common.messaging import UnitOfWork
from services.common.metrics import DOWNLOAD_BYTES, DOWNLOADS, collection_label
from services.common.persistence import insert_ignore, table_of
from services.common.projection import record_values
from services.common.security import Principal
from services.download.domain import ACQUISITION_NUMBER, INSTANCE_NUMBER, Image
from services.download.models import (
    Basket,
    BasketSeries,
    Collection,
    DownloadRecord,
    Instance,
    Series,
)
from services.download.queries import NEVER, Readable
from services.download.streaming import Progress, in_thread
from services.download.ziplayout import Entry, Layout, etag

if TYPE_CHECKING:
    from services.download.bootstrap import Download

log = logging.getLogger("imarc.download")


# -- the index of published series -------------------------------------------------------


async def series_published(uow: UnitOfWork, p: SeriesPublished) -> None:
    """Index (or re-index) a published series; its instance set is replaced."""
    s = uow.session
    uid = p.series_instance_uid
    # The event carries qc's copy of the collection; collection.updated stays the
    # authority, so it only fills in a collection not seen yet (as the oldest record).
    columns = table_of(Collection).c
    known = {k: v for k, v in record_values(p.collection).items() if k in columns}
    await insert_ignore(s, Collection, [{**known, "updated_at": NEVER}])
    new = {
        "series_instance_uid": uid,
        "collection": p.collection.name,
        "study_instance_uid": p.study_instance_uid,
        "patient_id": p.patient_id,
    }
    await insert_ignore(s, Series, [new])
    series = await s.get(Series, uid, with_for_update=True)
    assert series is not None
    newest = max((t for t in (series.released_at, series.withdrawn_at) if t), default=None)
    if newest is not None and p.released_at <= newest:
        log.info("ignoring an older publication of series %s", uid)
        return
    series.collection = p.collection.name
    series.study_instance_uid, series.patient_id = p.study_instance_uid, p.patient_id
    series.released_at, series.withdrawn_at = p.released_at, None
    first = p.instances[0].header if p.instances else {}
    series.modality, series.body_part = text(first, "Modality"), text(first, "BodyPartExamined")
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
            crc32=i.crc32,
        )
        for i in {i.sop_instance_uid: i for i in p.instances}.values()
    )


async def series_withdrawn(uow: UnitOfWork, p: SeriesWithdrawn, at: datetime) -> None:
    """Stop serving a series. The row stays as a tombstone: a publication delivered late
    (another queue) cannot bring back what was withdrawn after it."""
    s = uow.session
    uid = p.series_instance_uid
    await insert_ignore(s, Series, [{"series_instance_uid": uid, "collection": p.collection}])
    series = await s.get(Series, uid, with_for_update=True)
    assert series is not None
    if series.released_at is not None and at <= series.released_at:
        return  # withdrawn before a later re-publication
    series.withdrawn_at = max(at, series.withdrawn_at or at)
    await s.execute(delete(Instance).where(Instance.series_instance_uid == uid))


# -- baskets -----------------------------------------------------------------------------


async def create_basket(download: Download, principal: Principal, series: Sequence[str]) -> str:
    """Keep a list of series under a new id (every UID as given, once, in order: a basket
    does not tell which series exist or are restricted). Returns the id."""
    uids = list(dict.fromkeys(u.strip() for u in series if u.strip()))
    basket_id = uuid.uuid4().hex
    async with download.uow() as uow:
        uow.session.add(
            Basket(
                id=basket_id,
                owner=principal.subject,
                series_count=len(uids),
                created_at=datetime.now(UTC),
            )
        )
        await uow.session.flush()
        rows = [
            {"basket_id": basket_id, "position": i, "series_instance_uid": uid}
            for i, uid in enumerate(uids)
        ]
        await insert_ignore(uow.session, BasketSeries, rows)
    return basket_id


# -- sending -----------------------------------------------------------------------------


def _sha256_of(e: Entry[Image]) -> str:
    if e.source is not None:
        return e.source.sha256
    return hashlib.sha256(e.data or b"").hexdigest()


def series_layout(
    series: Readable, names: Sequence[str], notices: Sequence[tuple[str, bytes]]
) -> tuple[Layout[Image], str]:
    """The byte layout of a series zip whose images all have a recorded CRC-32, and the
    entity tag that names its contents."""
    entries: list[Entry[Image]] = [Entry.literal(name, data) for name, data in notices]
    for image, name in zip(series.images, names, strict=True):
        assert image.crc32 is not None
        entries.append(Entry(name, image.size, image.crc32, source=image))
    layout = Layout(entries, series.released_at)
    tag = etag(
        [
            series.series_instance_uid,
            series.released_at.isoformat(),
            *(f"{e.name}:{e.size}:{e.crc32}:{_sha256_of(e)}" for e in entries),
        ]
    )
    return layout, tag


def send(
    download: Download,
    source: Iterator[bytes],
    principal: Principal,
    series: Readable,
    progress: Progress,
    *,
    length: int,
    kind: str,
    sop_instance_uid: str | None = None,
) -> AsyncIterator[bytes]:
    """The response body of a download (``length`` bytes): ``source`` read in a worker
    thread, then the download logged as complete — or as partial if the stream ends
    early. A client that closes once it has every byte has had a complete download."""

    def record(complete: bool) -> Coroutine[Any, Any, None]:
        return record_download(
            download,
            principal,
            series,
            kind=kind,
            dicom_bytes=progress.dicom_bytes,
            complete=complete,
            sop_instance_uid=sop_instance_uid,
        )

    async def body() -> AsyncIterator[bytes]:
        sent = 0
        try:
            async with aclosing(in_thread(source)) as blocks:
                async for block in blocks:
                    yield block
                    sent += len(block)  # asked for more: this one has been sent
        except BaseException:
            if sent < length:
                log.warning(
                    "download of series %s by %s ended early after %d of %d bytes",
                    series.series_instance_uid,
                    principal.subject,
                    sent,
                    length,
                )
            download.spawn(record(sent >= length))
            raise
        await record(True)

    return body()


async def record_download(
    download: Download,
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
    label = collection_label(series.collection, series.terms.access)
    DOWNLOAD_BYTES.labels(label).inc(dicom_bytes)
    if complete:
        DOWNLOADS.labels(label, kind).inc()
    try:
        async with download.uow() as uow:
            uow.session.add(
                DownloadRecord(
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
