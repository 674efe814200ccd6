"""Reads of qc's curation index for the API and for the use cases (no writes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database
from services.common.events import CollectionUpdated
from services.qc.domain import NotFound, ReviewState, SeriesSummary, Stage, face_reason
from services.qc.models import Approval, Collection, CurationSettings, Finding, Instance, Series
from services.qc.schemas import CollectionStatus, SeriesOut

#: stages of an instance with a de-identified object in curation
CURATED = (Stage.DEIDENTIFIED.value, Stage.PUBLISHED.value)


def _count(cond: Any) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


async def collection_status(db: Database, collection: str) -> CollectionStatus:
    async with db.session() as s:
        known = await s.get(Collection, collection)
        row = (
            await s.execute(
                select(
                    func.count(),
                    _count(Instance.received_at.is_not(None)),
                    _count(Instance.stage == Stage.HELD),
                    _count(Instance.stage.in_(CURATED)),
                    _count(Instance.stage == Stage.DEIDENTIFIED),
                    _count(Instance.stage == Stage.PUBLISHED),
                ).where(Instance.collection == collection)
            )
        ).one()
    if known is None and not row[0]:
        raise NotFound(
            f"collection {collection} is not known to qc; register it with "
            "`imarc collections create` and submit to it first"
        )
    return CollectionStatus(
        collection=collection,
        received=int(row[1]),
        held=int(row[2]),
        deidentified=int(row[3]),
        awaiting_review=int(row[4]),
        published=int(row[5]),
    )


def _summaries() -> Any:
    """Series with their counts: awaiting review, publishable (in curation), published."""
    return (
        select(
            Series,
            _count(Instance.stage == Stage.DEIDENTIFIED),
            _count(Instance.stage.in_(CURATED)),
            _count(Instance.stage == Stage.PUBLISHED),
        )
        .outerjoin(Instance, Instance.series_instance_uid == Series.series_instance_uid)
        .group_by(Series.series_instance_uid)
        .order_by(Series.patient_id, Series.study_instance_uid, Series.series_instance_uid)
    )


def _series_out(series: Series, awaiting: int, publishable: int, published: int) -> SeriesOut:
    return SeriesOut(
        series_instance_uid=series.series_instance_uid,
        collection=series.collection,
        study_instance_uid=series.study_instance_uid,
        patient_id=series.patient_id,
        modality=series.modality,
        review_state=ReviewState(series.review_state),
        instances=int(publishable),
        awaiting_review=int(awaiting),
        published=int(published),
        reviewed_by=series.reviewed_by,
        reviewed_at=series.reviewed_at,
        published_at=series.published_at,
    )


async def list_series(db: Database, collection: str) -> list[SeriesOut]:
    async with db.session() as s:
        rows = (await s.execute(_summaries().where(Series.collection == collection))).all()
    return [_series_out(*r) for r in rows]


async def one_series(db: Database, uid: str) -> SeriesOut:
    async with db.session() as s:
        row = (await s.execute(_summaries().where(Series.series_instance_uid == uid))).one()
    return _series_out(*row)


async def series_headers(
    s: AsyncSession, collection: str | None = None
) -> list[tuple[str, str, str, dict[str, Any]]]:
    """One curated header per series — its instances agree on body part and descriptions —
    as (collection, series UID, modality, header), for a collection or for all."""
    first = select(func.min(Instance.instance_id)).where(Instance.stage.in_(CURATED))
    if collection is not None:
        first = first.where(Instance.collection == collection)
    rows = await s.execute(
        select(
            Instance.collection, Instance.series_instance_uid, Instance.modality, Instance.header
        ).where(Instance.instance_id.in_(first.group_by(Instance.series_instance_uid)))
    )
    return [(c, str(uid), m or "", h or {}) for c, uid, m, h in rows.all()]


async def publish_candidates(
    db: Database, collection: str, requested: Sequence[str]
) -> tuple[CollectionUpdated | None, dict[str, SeriesSummary]]:
    """The collection's record (None if qc has not seen it) and the series a publish may
    take: the collection's own and any requested by UID (to tell foreign ones apart)."""
    async with db.session() as s:
        coll = await s.get(Collection, collection)
        rows = (
            await s.execute(
                _summaries().where(
                    or_(Series.collection == collection, Series.series_instance_uid.in_(requested))
                )
            )
        ).all()
        flagged = dict(
            (
                await s.execute(
                    select(Finding.series_instance_uid, func.count())
                    .where(Finding.collection == collection)
                    .group_by(Finding.series_instance_uid)
                )
            ).all()
        )
        approved = set(
            (
                await s.scalars(
                    select(Approval.series_instance_uid).where(Approval.collection == collection)
                )
            ).all()
        )
        faces = {
            uid: face_reason(modality, header)
            for _, uid, modality, header in await series_headers(s, collection)
        }
    known = {
        series.series_instance_uid: SeriesSummary(
            series.series_instance_uid,
            series.collection,
            ReviewState(series.review_state),
            int(awaiting),
            int(publishable),
            findings=int(flagged.get(series.series_instance_uid, 0)),
            approved=series.series_instance_uid in approved,
            face=faces.get(series.series_instance_uid),
        )
        for series, awaiting, publishable, _ in rows
    }
    record = CollectionUpdated.model_validate(coll.record) if coll is not None else None
    return record, known


async def curated_instances(db: Database, uid: str) -> list[Instance]:
    """The instances of a series with an object in curation, oldest de-identification first."""
    async with db.session() as s:
        return list(
            (
                await s.scalars(
                    select(Instance)
                    .where(Instance.series_instance_uid == uid, Instance.stage.in_(CURATED))
                    .order_by(Instance.stage_at)
                )
            ).all()
        )


async def needs_submitter_approval(db: Database, collection: str) -> bool:
    async with db.session() as s:
        settings = await s.get(CurationSettings, collection)
    return bool(settings and settings.submitter_approval)
