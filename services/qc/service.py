"""qc's use cases: the curation index kept from intake's and deid's events, and a
curator's and a manager's commands (review, publish, withdraw)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.events import (
    InstanceDeidentified,
    InstanceHeld,
    InstanceReceived,
    PublishedInstance,
    SeriesPublished,
    SeriesWithdrawn,
)
from services.common.messaging import UnitOfWork
from services.common.metrics import SERIES_PUBLISHED
from services.common.persistence import insert_ignore
from services.common.security import Principal
from services.common.store import ObjectNotFound
from services.qc import queries
from services.qc.domain import (
    EPOCH,
    Conflict,
    CopyRecord,
    NotFound,
    ReviewState,
    Stage,
    check_requested,
    copy_mismatch,
    default_selection,
    same_object,
    supersedes,
)
from services.qc.models import Instance, Series
from services.qc.queries import CURATED

if TYPE_CHECKING:
    from services.qc.bootstrap import Qc

log = logging.getLogger("imarc.qc")
COPY_CONCURRENCY = 8


# -- the curation index ------------------------------------------------------------------


async def _locked_instance(s: AsyncSession, instance_id: str, collection: str) -> Instance:
    """The instance's row, created if new, locked for this transaction (competing
    consumers of different queues may touch the same instance at once)."""
    new = {
        "instance_id": instance_id,
        "collection": collection,
        "stage": Stage.RECEIVED,
        "stage_at": EPOCH,
        "site": "",
        "filename": "",
    }
    await insert_ignore(s, Instance, [new])
    row = await s.scalar(
        select(Instance).where(Instance.instance_id == instance_id).with_for_update()
    )
    assert row is not None
    return row


async def instance_received(uow: UnitOfWork, p: InstanceReceived, at: datetime) -> None:
    inst = await _locked_instance(uow.session, p.instance_id, p.collection)
    if inst.received_at is None:
        inst.received_at = at
    if supersedes(at, inst.stage_at):
        inst.stage, inst.stage_at = Stage.RECEIVED, at
        inst.site, inst.filename = p.site, p.filename
        inst.held_stage = inst.held_reason = None


async def instance_held(uow: UnitOfWork, p: InstanceHeld, at: datetime) -> None:
    inst = await _locked_instance(uow.session, p.instance_id, p.collection)
    if p.stage == "deid" and inst.received_at is None:
        inst.received_at = at  # deid only holds what intake received
    if supersedes(at, inst.stage_at):
        inst.stage, inst.stage_at = Stage.HELD, at
        inst.held_stage, inst.held_reason = p.stage, p.reason
        inst.site, inst.filename = p.site or inst.site, p.filename or inst.filename


async def instance_deidentified(uow: UnitOfWork, p: InstanceDeidentified, at: datetime) -> None:
    s = uow.session
    inst = await _locked_instance(s, p.instance_id, p.collection)
    if inst.received_at is None:
        inst.received_at = at  # de-identified implies received
    if not supersedes(at, inst.stage_at):
        return
    unchanged = inst.stage == Stage.PUBLISHED and same_object(
        inst.curation_key, inst.sha256, p.object.key, p.object.sha256
    )
    inst.stage = Stage.PUBLISHED if unchanged else Stage.DEIDENTIFIED
    inst.stage_at = at
    inst.held_stage = inst.held_reason = None
    inst.site = p.site or inst.site
    inst.series_instance_uid = p.series_instance_uid
    inst.study_instance_uid = p.study_instance_uid
    inst.sop_instance_uid = p.sop_instance_uid
    inst.sop_class_uid = p.sop_class_uid
    inst.patient_id = p.patient_id
    inst.modality = p.modality
    inst.curation_key, inst.size, inst.sha256 = p.object.key, p.object.size, p.object.sha256
    inst.header = p.header
    series = {
        "series_instance_uid": p.series_instance_uid,
        "collection": p.collection,
        "study_instance_uid": p.study_instance_uid,
        "patient_id": p.patient_id,
        "modality": p.modality,
        "review_state": ReviewState.NOT_REVIEWED,
    }
    await insert_ignore(s, Series, [series])


# -- review, publish, withdraw -----------------------------------------------------------


async def _series_for(s: AsyncSession, uid: str, principal: Principal, *, manage: bool) -> Series:
    series = await s.get(Series, uid, with_for_update=True)
    allowed = series is not None and (
        principal.can_manage(series.collection)
        if manage
        else principal.can_curate(series.collection)
    )
    if series is None or not allowed:
        role = "manage" if manage else "curate"
        raise NotFound(
            f"series {uid} is not among the series you can {role}; check the UID and your role"
        )
    return series


async def review(qc: Qc, principal: Principal, uid: str, state: ReviewState) -> None:
    """A curator's decision on a series."""
    async with qc.uow() as uow:
        series = await _series_for(uow.session, uid, principal, manage=False)
        series.review_state = state
        series.reviewed_by, series.reviewed_at = principal.subject, datetime.now(UTC)


@dataclass(frozen=True)
class _Copied:
    instance_id: str
    record: CopyRecord
    published: PublishedInstance


async def _copy_series(qc: Qc, uid: str) -> list[_Copied]:
    """Copy every curated instance of a series to the public zone (same key) and check
    each copy against the record; raises Conflict on any difference."""
    rows = await queries.curated_instances(qc.db, uid)
    # One object per key: if two submissions map to the same SOP Instance UID, the
    # later de-identification is the one in curation.
    latest = {r.curation_key: r for r in rows if r.curation_key}
    sem = asyncio.Semaphore(COPY_CONCURRENCY)

    async def one(r: Instance) -> _Copied:
        record = CopyRecord(str(r.curation_key), int(r.size or 0), str(r.sha256))
        async with sem:
            try:
                copied = await qc.store.copy("curation", record.key, "public")
            except ObjectNotFound as e:
                raise Conflict(
                    f"series {uid} cannot be published: {record.key} is missing from curation; "
                    "re-submit that instance"
                ) from e
        problem = copy_mismatch(record, copied.size, copied.sha256)
        if problem:
            log.error("published copy differs from the curation record: %s", problem)
            raise Conflict(
                f"series {uid} cannot be published: {problem}; it is being re-processed, "
                "try again shortly"
            )
        published = PublishedInstance(
            sop_instance_uid=str(r.sop_instance_uid),
            key=record.key,
            size=record.size,
            sha256=record.sha256,
            header=r.header or {},
            crc32=copied.crc32,
        )
        return _Copied(r.instance_id, record, published)

    return list(await asyncio.gather(*(one(r) for r in latest.values())))


async def publish(
    qc: Qc, principal: Principal, collection: str, requested: Sequence[str]
) -> tuple[list[str], int]:
    """Approve and publish series of a collection: copy to public, verify, then mark
    them published and emit ``series.published`` in one transaction. Returns the series
    published and their number of instances."""
    record, known = await queries.publish_candidates(qc.db, collection, requested)
    uids = (
        check_requested(collection, requested, known)
        if requested
        else default_selection(s for s in known.values() if s.collection == collection)
    )
    if record is None:
        raise Conflict(
            f"collection {collection} is not registered with qc yet; register it with "
            "`imarc collections create` and try again"
        )
    if not uids:
        return [], 0

    copies = {uid: await _copy_series(qc, uid) for uid in uids}
    now = datetime.now(UTC)
    async with qc.uow() as uow:
        for uid, copied in copies.items():
            series = await uow.session.get(Series, uid, with_for_update=True)
            assert series is not None
            ids = [c.instance_id for c in copied]
            current = {
                r.instance_id: r
                for r in await uow.session.scalars(
                    select(Instance).where(Instance.instance_id.in_(ids)).with_for_update()
                )
            }
            sites = set()
            for c in copied:
                inst = current.get(c.instance_id)
                if inst is None or inst.stage not in CURATED or inst.sha256 != c.record.sha256:
                    raise Conflict(f"series {uid} changed while it was being published; try again")
                inst.stage, inst.published_at = Stage.PUBLISHED, now
                sites.add(inst.site)
            series.review_state = ReviewState.VISIBLE
            series.reviewed_by, series.reviewed_at = principal.subject, now
            series.published_at, series.withdrawn_at = now, None
            uow.emit(
                SeriesPublished(
                    collection=record,
                    site=sorted(sites)[0] if sites else "",
                    patient_id=series.patient_id,
                    study_instance_uid=series.study_instance_uid,
                    series_instance_uid=uid,
                    released_at=now,
                    instances=sorted(
                        (c.published for c in copied), key=lambda i: i.sop_instance_uid
                    ),
                ).event(qc.source, subject=uid)
            )
    instances = sum(len(c) for c in copies.values())
    SERIES_PUBLISHED.labels(collection).inc(len(copies))
    log.info("published %d series (%d instances) of %s", len(copies), instances, collection)
    return list(copies), instances


async def withdraw(qc: Qc, principal: Principal, uid: str, reason: str) -> int:
    """Withdraw a published series: emit ``series.withdrawn`` (download and catalog stop
    serving it), then delete its public objects. Returns how many were deleted."""
    async with qc.uow() as uow:
        series = await _series_for(uow.session, uid, principal, manage=True)
        if series.published_at is None:
            raise Conflict(f"series {uid} is not published, so there is nothing to withdraw")
        rows = (
            await uow.session.scalars(
                select(Instance).where(Instance.series_instance_uid == uid).with_for_update()
            )
        ).all()
        keys = sorted({r.curation_key for r in rows if r.curation_key})
        for r in rows:
            if r.stage == Stage.PUBLISHED:
                r.stage, r.published_at = Stage.DEIDENTIFIED, None
        series.review_state = ReviewState.NOT_VISIBLE
        series.published_at, series.withdrawn_at = None, datetime.now(UTC)
        series.reviewed_by, series.reviewed_at = principal.subject, series.withdrawn_at
        uow.emit(
            SeriesWithdrawn(
                collection=series.collection, series_instance_uid=uid, reason=reason
            ).event(qc.source, subject=uid)
        )
    for key in keys:
        try:
            await qc.store.delete("public", key)
        except Exception:  # the withdrawal stands; a leftover object is only unreachable
            log.exception("could not delete public/%s of withdrawn series %s", key, uid)
    log.info("withdrew series %s (%d objects)", uid, len(keys))
    return len(keys)
