"""A curator's review of series (with its history), a submitter's approval, and a
manager's settings of a collection's curation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.persistence import insert_ignore, upsert
from services.common.security import Principal
from services.qc.domain import (
    CURATION_STATUSES,
    Conflict,
    NotFound,
    ReviewState,
    SeriesFilter,
)
from services.qc.models import Approval, CurationSettings, Finding, ReviewEvent, Series

if TYPE_CHECKING:
    from services.qc.bootstrap import Qc


async def series_for(s: AsyncSession, uid: str, principal: Principal, *, manage: bool) -> Series:
    """The series, locked, if the principal may curate (or manage) its collection; the
    same answer for an unknown series and one of another collection."""
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


def _decide(s: AsyncSession, series: Series, by: str, state: ReviewState, comment: str) -> None:
    now = datetime.now(UTC)
    series.review_state = state
    series.reviewed_by, series.reviewed_at = by, now
    s.add(
        ReviewEvent(
            series_instance_uid=series.series_instance_uid,
            collection=series.collection,
            state=state.value,
            by=by,
            at=now,
            comment=comment,
        )
    )


async def review(
    qc: Qc, principal: Principal, uid: str, state: ReviewState, comment: str = ""
) -> None:
    """A curator's decision on one series, kept in its history."""
    async with qc.uow() as uow:
        series = await series_for(uow.session, uid, principal, manage=False)
        _decide(uow.session, series, principal.subject, state, comment)


async def review_many(
    qc: Qc,
    principal: Principal,
    collection: str,
    which: SeriesFilter,
    state: ReviewState,
    comment: str = "",
) -> list[str]:
    """The same decision on every series of ``collection`` the filter selects; returns
    their UIDs. Published series are left alone (withdraw them instead)."""
    if not principal.can_curate(collection):
        raise NotFound(f"collection {collection} is not among those you can curate")
    async with qc.uow() as uow:
        s = uow.session
        findings = dict(
            (
                await s.execute(
                    select(Finding.series_instance_uid, func.count())
                    .where(Finding.collection == collection)
                    .group_by(Finding.series_instance_uid)
                )
            ).all()
        )
        rows = (
            await s.scalars(select(Series).where(Series.collection == collection).with_for_update())
        ).all()
        chosen = [
            r
            for r in rows
            if r.published_at is None
            and which.matches(
                ReviewState(r.review_state),
                r.modality,
                int(findings.get(r.series_instance_uid, 0)),
                r.series_instance_uid,
            )
        ]
        for series in chosen:
            _decide(s, series, principal.subject, state, comment)
    return sorted(r.series_instance_uid for r in chosen)


async def approve(qc: Qc, principal: Principal, collection: str, uids: Sequence[str]) -> list[str]:
    """The submitter approves de-identified series of their collection (all of them
    when ``uids`` is empty); returns the series approved by this call."""
    if not (principal.has_role("submitter", collection) or principal.can_manage(collection)):
        raise NotFound(f"collection {collection} is not among those you submit to")
    now = datetime.now(UTC)
    async with qc.uow() as uow:
        query = select(Series.series_instance_uid).where(Series.collection == collection)
        if uids:
            query = query.where(Series.series_instance_uid.in_(list(uids)))
        found = list((await uow.session.scalars(query)).all())
        missing = sorted(set(uids) - set(found))
        if missing:
            raise NotFound(
                f"series {missing[0]} is not in curation for collection {collection}; "
                f"list them with GET /api/qc/collections/{collection}/series"
            )
        rows = [
            {"series_instance_uid": u, "collection": collection, "by": principal.subject, "at": now}
            for u in found
        ]
        await insert_ignore(uow.session, Approval, rows)
    return sorted(found)


async def configure(
    qc: Qc,
    principal: Principal,
    collection: str,
    *,
    status: str | None = None,
    priority: int | None = None,
    submitter_approval: bool | None = None,
) -> CurationSettings:
    """A manager sets a collection's curation status, priority, and whether publishing
    waits for the submitter's approval."""
    if not principal.can_manage(collection):
        raise NotFound(f"collection {collection} is not among those you manage")
    if status is not None and status not in CURATION_STATUSES:
        raise Conflict(f"unknown status {status!r}; use one of {', '.join(CURATION_STATUSES)}")
    async with qc.uow() as uow:
        current = await uow.session.get(CurationSettings, collection)
        row = {
            "collection": collection,
            "status": status or (current.status if current else "active"),
            "priority": priority if priority is not None else (current.priority if current else 0),
            "submitter_approval": (
                submitter_approval
                if submitter_approval is not None
                else bool(current and current.submitter_approval)
            ),
            "updated_by": principal.subject,
            "updated_at": datetime.now(UTC),
        }
        await upsert(uow.session, CurationSettings, [row], key=("collection",))
    return CurationSettings(**row)
