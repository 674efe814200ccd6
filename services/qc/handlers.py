"""qc's event handlers (the curation index) and commands (review, publish, withdraw)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import conflict_insert, dialect_of
from services.common.events import (
    CollectionUpdated,
    Event,
    InstanceDeidentified,
    InstanceHeld,
    InstanceReceived,
    PublishedInstance,
    SeriesPublished,
    SeriesWithdrawn,
)
from services.common.messaging import UnitOfWork
from services.common.metrics import SERIES_PUBLISHED
from services.common.projection import project_collection
from services.common.security import Principal
from services.common.service import ServiceContext
from services.common.store import ObjectNotFound
from services.qc.domain import (
    EPOCH,
    Conflict,
    CopyRecord,
    NotFound,
    ReviewState,
    SeriesSummary,
    Stage,
    check_requested,
    copy_mismatch,
    default_selection,
    same_object,
    supersedes,
)
from services.qc.models import Collection, Instance, Series

log = logging.getLogger("imarc.qc")
COPY_CONCURRENCY = 8
CURATED = (Stage.DEIDENTIFIED.value, Stage.PUBLISHED.value)


async def _insert_ignore(session: AsyncSession, table: Table, values: dict[str, Any]) -> None:
    """``INSERT ... ON CONFLICT DO NOTHING`` of one row."""
    stmt = _insert_ignore_statement(table, dialect_of(session))
    await session.execute(stmt, values)


@functools.lru_cache(maxsize=16)
def _insert_ignore_statement(table: Table, dialect: str) -> Any:
    """Built once per table: constructing a statement costs more than running it."""
    return conflict_insert(dialect, table).on_conflict_do_nothing()


async def _locked_instance(s: AsyncSession, instance_id: str, collection: str) -> Instance:
    """The instance's row, created if new, locked for this transaction (competing
    consumers of different queues may touch the same instance at once)."""
    await _insert_ignore(
        s,
        Instance.__table__,  # type: ignore[arg-type]
        {
            "instance_id": instance_id,
            "collection": collection,
            "stage": Stage.RECEIVED,
            "stage_at": EPOCH,
            "site": "",
            "filename": "",
        },
    )
    row = await s.scalar(
        select(Instance).where(Instance.instance_id == instance_id).with_for_update()
    )
    assert row is not None
    return row


# -- consumers -------------------------------------------------------------------------


async def on_collection_updated(event: Event, uow: UnitOfWork) -> list[Event]:
    """Keep the collection's record (the newest announcement wins)."""
    await project_collection(uow.session, Collection, event)
    return []


async def on_instance_received(event: Event, uow: UnitOfWork) -> list[Event]:
    s = uow.session
    p = event.payload(InstanceReceived)
    inst = await _locked_instance(s, p.instance_id, p.collection)
    if inst.received_at is None:
        inst.received_at = event.time
    if supersedes(event.time, inst.stage_at):
        inst.stage, inst.stage_at = Stage.RECEIVED, event.time
        inst.site, inst.filename = p.site, p.filename
        inst.held_stage = inst.held_reason = None
    return []


async def on_instance_held(event: Event, uow: UnitOfWork) -> list[Event]:
    s = uow.session
    p = event.payload(InstanceHeld)
    inst = await _locked_instance(s, p.instance_id, p.collection)
    if p.stage == "deid" and inst.received_at is None:
        inst.received_at = event.time  # deid only holds what intake received
    if supersedes(event.time, inst.stage_at):
        inst.stage, inst.stage_at = Stage.HELD, event.time
        inst.held_stage, inst.held_reason = p.stage, p.reason
        inst.site, inst.filename = p.site or inst.site, p.filename or inst.filename
    return []


async def on_instance_deidentified(event: Event, uow: UnitOfWork) -> list[Event]:
    s = uow.session
    p = event.payload(InstanceDeidentified)
    inst = await _locked_instance(s, p.instance_id, p.collection)
    if inst.received_at is None:
        inst.received_at = event.time  # de-identified implies received
    if not supersedes(event.time, inst.stage_at):
        return []
    unchanged = inst.stage == Stage.PUBLISHED and same_object(
        inst.curation_key, inst.sha256, p.object.key, p.object.sha256
    )
    inst.stage = Stage.PUBLISHED if unchanged else Stage.DEIDENTIFIED
    inst.stage_at = event.time
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
    await _insert_ignore(
        s,
        Series.__table__,  # type: ignore[arg-type]
        {
            "series_instance_uid": p.series_instance_uid,
            "collection": p.collection,
            "study_instance_uid": p.study_instance_uid,
            "patient_id": p.patient_id,
            "modality": p.modality,
            "review_state": ReviewState.NOT_REVIEWED,
        },
    )
    return []


# -- queries ---------------------------------------------------------------------------


async def collection_status(ctx: ServiceContext, collection: str) -> dict[str, Any]:
    def count(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

    async with ctx.db.session() as s:
        known = await s.get(Collection, collection)
        row = (
            await s.execute(
                select(
                    func.count(),
                    count(Instance.received_at.is_not(None)),
                    count(Instance.stage == Stage.HELD),
                    count(Instance.stage.in_(CURATED)),
                    count(Instance.stage == Stage.DEIDENTIFIED),
                    count(Instance.stage == Stage.PUBLISHED),
                ).where(Instance.collection == collection)
            )
        ).one()
    if known is None and not row[0]:
        raise NotFound(
            f"collection {collection} is not known to qc; register it with "
            "`imarc collections create` and submit to it first"
        )
    return {
        "collection": collection,
        "received": int(row[1]),
        "held": int(row[2]),
        "deidentified": int(row[3]),
        "awaiting_review": int(row[4]),
        "published": int(row[5]),
    }


def _summary_query() -> Any:
    awaiting = func.coalesce(func.sum(case((Instance.stage == Stage.DEIDENTIFIED, 1), else_=0)), 0)
    publishable = func.coalesce(func.sum(case((Instance.stage.in_(CURATED), 1), else_=0)), 0)
    published = func.coalesce(func.sum(case((Instance.stage == Stage.PUBLISHED, 1), else_=0)), 0)
    return (
        select(Series, awaiting, publishable, published)
        .outerjoin(Instance, Instance.series_instance_uid == Series.series_instance_uid)
        .group_by(Series.series_instance_uid)
        .order_by(Series.patient_id, Series.study_instance_uid, Series.series_instance_uid)
    )


def _series_view(series: Series, awaiting: int, publishable: int, published: int) -> dict[str, Any]:
    return {
        "series_instance_uid": series.series_instance_uid,
        "collection": series.collection,
        "study_instance_uid": series.study_instance_uid,
        "patient_id": series.patient_id,
        "modality": series.modality,
        "review_state": series.review_state,
        "instances": int(publishable),
        "awaiting_review": int(awaiting),
        "published": int(published),
        "reviewed_by": series.reviewed_by,
        "reviewed_at": series.reviewed_at,
        "published_at": series.published_at,
    }


async def list_series(ctx: ServiceContext, collection: str) -> list[dict[str, Any]]:
    async with ctx.db.session() as s:
        rows = (await s.execute(_summary_query().where(Series.collection == collection))).all()
    return [_series_view(*r) for r in rows]


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


# -- commands --------------------------------------------------------------------------


async def set_review(
    ctx: ServiceContext, principal: Principal, uid: str, state: ReviewState
) -> dict[str, Any]:
    async with ctx.messaging.transaction() as tx:
        series = await _series_for(tx.session, uid, principal, manage=False)
        series.review_state = state
        series.reviewed_by, series.reviewed_at = principal.subject, datetime.now(UTC)
    async with ctx.db.session() as s:
        row = (await s.execute(_summary_query().where(Series.series_instance_uid == uid))).one()
    return _series_view(*row)


@dataclass(frozen=True)
class _Copied:
    instance_id: str
    record: CopyRecord
    published: PublishedInstance


async def _copy_series(ctx: ServiceContext, uid: str) -> list[_Copied]:
    """Copy every curated instance of a series to the public zone (same key) and check
    each copy against the record; raises Conflict on any difference."""
    async with ctx.db.session() as s:
        rows = (
            await s.scalars(
                select(Instance)
                .where(Instance.series_instance_uid == uid, Instance.stage.in_(CURATED))
                .order_by(Instance.stage_at)
            )
        ).all()
    # One object per key: if two submissions map to the same SOP Instance UID, the
    # later de-identification is the one in curation.
    latest = {r.curation_key: r for r in rows if r.curation_key}
    sem = asyncio.Semaphore(COPY_CONCURRENCY)

    async def one(r: Instance) -> _Copied:
        record = CopyRecord(str(r.curation_key), int(r.size or 0), str(r.sha256))
        async with sem:
            try:
                copied = await ctx.store.copy("curation", record.key, "public")
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
        return _Copied(
            r.instance_id,
            record,
            PublishedInstance(
                sop_instance_uid=str(r.sop_instance_uid),
                key=record.key,
                size=record.size,
                sha256=record.sha256,
                header=r.header or {},
            ),
        )

    return list(await asyncio.gather(*(one(r) for r in latest.values())))


async def publish(
    ctx: ServiceContext, principal: Principal, collection: str, requested: Sequence[str]
) -> tuple[list[str], int]:
    """Approve and publish series of a collection: copy to public, verify, then mark
    them published and emit ``series.published`` in one transaction."""
    async with ctx.db.session() as s:
        coll = await s.get(Collection, collection)
        rows = (
            await s.execute(
                _summary_query().where(
                    or_(Series.collection == collection, Series.series_instance_uid.in_(requested))
                )
            )
        ).all()
    known = {
        r[0].series_instance_uid: SeriesSummary(
            r[0].series_instance_uid,
            r[0].collection,
            ReviewState(r[0].review_state),
            int(r[1]),
            int(r[2]),
        )
        for r in rows
    }
    uids = (
        check_requested(collection, requested, known)
        if requested
        else default_selection(s for s in known.values() if s.collection == collection)
    )
    if coll is None:
        raise Conflict(
            f"collection {collection} is not registered with qc yet; register it with "
            "`imarc collections create` and try again"
        )
    if not uids:
        return [], 0

    copies = {uid: await _copy_series(ctx, uid) for uid in uids}
    record = CollectionUpdated.model_validate(coll.record)
    now = datetime.now(UTC)
    async with ctx.messaging.transaction() as tx:
        for uid, copied in copies.items():
            series = await tx.session.get(Series, uid, with_for_update=True)
            assert series is not None
            current = {
                r.instance_id: r
                for r in (
                    await tx.session.scalars(
                        select(Instance)
                        .where(Instance.instance_id.in_([c.instance_id for c in copied]))
                        .with_for_update()
                    )
                ).all()
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
            tx.emit(
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
                ).event(ctx.source, subject=uid)
            )
    SERIES_PUBLISHED.labels(collection).inc(len(copies))
    log.info(
        "published %d series (%d instances) of %s",
        len(copies),
        sum(len(c) for c in copies.values()),
        collection,
    )
    return list(copies), sum(len(c) for c in copies.values())


async def withdraw(
    ctx: ServiceContext, principal: Principal, uid: str, reason: str
) -> tuple[str, int]:
    """Withdraw a published series: emit ``series.withdrawn`` (download and catalog stop
    serving it), then delete its public objects."""
    async with ctx.messaging.transaction() as tx:
        series = await _series_for(tx.session, uid, principal, manage=True)
        if series.published_at is None:
            raise Conflict(f"series {uid} is not published, so there is nothing to withdraw")
        rows = (
            await tx.session.scalars(
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
        tx.emit(
            SeriesWithdrawn(
                collection=series.collection, series_instance_uid=uid, reason=reason
            ).event(ctx.source, subject=uid)
        )
    for key in keys:
        try:
            await ctx.store.delete("public", key)
        except Exception:  # the withdrawal stands; a leftover object is only unreachable
            log.exception("could not delete public/%s of withdrawn series %s", key, uid)
    log.info("withdrew series %s (%d objects)", uid, len(keys))
    return uid, len(keys)
