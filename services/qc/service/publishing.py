"""Publishing and withdrawing series: copy to the public zone, verify, then record and
emit ``series.published`` in one unit of work.

Only series a curator may release are published: never one marked Not Visible or To Be
Deleted, never one with residual-PHI findings unless a manager overrides with a written
reason (audited), and never one waiting for the submitter's approval when the collection
asks for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from services.common.events import PublishedInstance, SeriesPublished, SeriesWithdrawn
from services.common.metrics import SERIES_PUBLISHED, collection_label
from services.common.security import Principal
from services.common.store import ObjectNotFound
from services.qc import queries
from services.qc.domain import (
    Conflict,
    CopyRecord,
    Forbidden,
    ReviewState,
    Stage,
    check_requested,
    copy_mismatch,
    default_selection,
    publish_blockers,
)
from services.qc.models import Audit, Instance, Series
from services.qc.queries import CURATED
from services.qc.service.review import series_for

if TYPE_CHECKING:
    from services.qc.bootstrap import Qc

log = logging.getLogger("imarc.qc")
COPY_CONCURRENCY = 8


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
    qc: Qc,
    principal: Principal,
    collection: str,
    requested: Sequence[str],
    *,
    override_findings: bool = False,
    why: str = "",
) -> tuple[list[str], int]:
    """Approve and publish series of a collection: copy to public, verify, then mark
    them published and emit ``series.published`` in one transaction. Returns the series
    published and their number of instances.

    A series with residual-PHI findings is published only with ``override_findings`` and
    a reason (``why``), which is audited; without a list, such series are left out."""
    if override_findings and not why.strip():
        raise Forbidden(
            "publishing despite residual-PHI findings needs a written reason: add --why TEXT"
        )
    record, known = await queries.publish_candidates(qc.db, collection, requested)
    selection = (
        check_requested(collection, requested, known)
        if requested
        else default_selection(s for s in known.values() if s.collection == collection)
    )
    blocked = publish_blockers(
        [known[u] for u in selection],
        override_findings=override_findings,
        approval_required=await queries.needs_submitter_approval(qc.db, collection),
        public=record is not None and record.access == "public",
    )
    if requested and blocked:
        uid, problem = next(iter(blocked.items()))
        raise Conflict(problem)
    uids = [u for u in selection if u not in blocked]
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
        flagged = [u for u in uids if known[u].findings]
        if flagged:
            uow.session.add(
                Audit(
                    collection=collection,
                    action="publish_despite_findings",
                    by=principal.subject,
                    at=now,
                    why=why.strip(),
                    subject=" ".join(flagged),
                )
            )
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
    SERIES_PUBLISHED.labels(collection_label(collection, record.access)).inc(len(copies))
    log.info("published %d series (%d instances) of %s", len(copies), instances, collection)
    return list(copies), instances


async def withdraw(qc: Qc, principal: Principal, uid: str, reason: str) -> int:
    """Withdraw a published series: emit ``series.withdrawn`` (download and catalog stop
    serving it), then delete its public objects. Returns how many were deleted."""
    async with qc.uow() as uow:
        series = await series_for(uow.session, uid, principal, manage=True)
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
