"""The residual-PHI scan of a whole collection again (after a profile change): every
de-identified instance's curated object against its original, announced again with the
findings so curation sees them. Findings name an element path and a kind, never a value.

A collection may hold many thousands of instances, so the scan runs in the background a
page at a time and keeps its progress in ``scan_runs`` for the API and ``imarc qc scan``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import defer

from services.common.events import InstanceDeidentified, ObjectRef, ResidualFinding
from services.common.store import ObjectNotFound
from services.deid import queries, worker
from services.deid.models import Instance, ScanRun
from services.deid.service.profiles import current_profile, profile_of

if TYPE_CHECKING:
    from services.deid.bootstrap import Deid

log = logging.getLogger("imarc.deid")


async def _one(deid: Deid, row: Instance, retained: frozenset[str]) -> int | None:
    """Scan one instance and announce its findings; None when it cannot be scanned."""
    if row.quarantine_key is None:
        return None
    try:
        original = await deid.store.get("quarantine", row.quarantine_key)
        curated = await deid.store.get("curation", row.curation_key)
    except ObjectNotFound:
        return None
    findings, header = await deid.run_cpu(
        worker.rescan, original, curated, retained, row.curation_key
    )
    announced = InstanceDeidentified(
        instance_id=row.instance_id,
        collection=row.collection,
        object=ObjectRef(zone="curation", key=row.curation_key, size=row.size, sha256=row.sha256),
        patient_id=row.patient_id,
        study_instance_uid=row.study_instance_uid,
        series_instance_uid=row.series_instance_uid,
        sop_instance_uid=row.sop_instance_uid,
        sop_class_uid=row.sop_class_uid,
        modality=row.modality,
        header=header,
        profile_version=row.profile_version,
        findings=[ResidualFinding(path=p, kind=k) for p, k in findings],
    )
    async with deid.uow() as uow:
        # only if the instance still is the object scanned (not re-made meanwhile)
        changed = await uow.session.execute(
            update(Instance)
            .where(Instance.instance_id == row.instance_id, Instance.sha256 == row.sha256)
            .values(findings=len(findings))
        )
        if changed.rowcount:  # type: ignore[attr-defined]
            uow.emit(announced.event(deid.source, subject=row.instance_id))
    return len(findings)


#: A run that has not advanced for this long is taken as ended with its process; asking
#: again starts a new one.
STALLED_AFTER = timedelta(minutes=2)
#: Instances read and scanned per round; progress is written after each.
PAGE = 200


def stalled(run: ScanRun, now: datetime) -> bool:
    return run.state == "running" and now - run.updated_at > STALLED_AFTER


async def latest_run(deid: Deid, collection: str) -> ScanRun | None:
    """The newest scan of ``collection`` (NotFound if deid does not know it)."""
    await queries.known(deid.db, collection)
    async with deid.db.session() as s:
        return await s.scalar(
            select(ScanRun)
            .where(ScanRun.collection == collection)
            .order_by(ScanRun.started_at.desc())
            .limit(1)
        )


async def start_rescan(deid: Deid, collection: str, by: str) -> ScanRun:
    """Start scanning every de-identified instance of ``collection`` again, under its
    current profile's retained options, in the background; returns the run, whose
    progress :func:`latest_run` reads. A run already under way is returned, not doubled."""
    current = await latest_run(deid, collection)
    now = datetime.now(UTC)
    if current is not None and current.state == "running" and not stalled(current, now):
        return current
    async with deid.db.session() as s, s.begin():
        total = await s.scalar(
            select(func.count()).select_from(Instance).where(Instance.collection == collection)
        )
        run = ScanRun(
            id=str(uuid.uuid4()), collection=collection, state="running", requested_by=by,
            total=total or 0, scanned=0, findings=0, skipped=0, started_at=now, updated_at=now,
        )  # fmt: skip
        s.add(run)
    deid.background(_rescan(deid, run.id, collection), f"deid-scan-{collection}")
    return run


async def _rescan(deid: Deid, run_id: str, collection: str) -> None:
    async with deid.db.session() as s:
        profile = await current_profile(s, collection)
    retained = profile_of(profile).options if profile is not None else frozenset()
    gate = asyncio.Semaphore(max(1, deid.workers * 2))

    async def scan(instance: Instance) -> int | None:
        async with gate:
            return await _one(deid, instance, retained)

    after, scanned, found, skipped = "", 0, 0, 0
    try:
        while True:
            async with deid.db.session() as s:
                page = list(
                    await s.scalars(
                        select(Instance)
                        .options(defer(Instance.audit))  # each row's long audit list is not read
                        .where(Instance.collection == collection, Instance.instance_id > after)
                        .order_by(Instance.instance_id)
                        .limit(PAGE)
                    )
                )
            if not page:
                break
            after = page[-1].instance_id
            results = await asyncio.gather(*(scan(i) for i in page))
            done = [n for n in results if n is not None]
            scanned, found = scanned + len(done), found + sum(done)
            skipped += len(results) - len(done)
            await _progress(deid, run_id, scanned=scanned, findings=found, skipped=skipped)
    except Exception as e:  # a stopped service cancels the task: that is not a failure
        log.exception("scanning a collection again failed", extra={"service": "deid"})
        await _progress(
            deid, run_id, state="failed", finished=True,
            error=f"{type(e).__name__}; see the deid log, then start the scan again",
        )  # fmt: skip
        return
    await _progress(deid, run_id, state="done", finished=True)
    log.info(
        "scanned %d instances again: %d findings",
        scanned,
        found,
        extra={"service": "deid", "collection": collection},
    )


async def _progress(
    deid: Deid, run_id: str, *, finished: bool = False, **values: int | str
) -> None:
    now = datetime.now(UTC)
    changes: dict[str, object] = {**values, "updated_at": now}
    if finished:
        changes["finished_at"] = now
    async with deid.db.session() as s, s.begin():
        await s.execute(update(ScanRun).where(ScanRun.id == run_id).values(**changes))
