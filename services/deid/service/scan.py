"""The residual-PHI scan of a whole collection again (after a profile change): every
de-identified instance's curated object against its original, announced again with the
findings so curation sees them. Findings name an element path and a kind, never a value.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from services.common.events import InstanceDeidentified, ObjectRef, ResidualFinding
from services.common.store import ObjectNotFound
from services.deid import queries, worker
from services.deid.models import Instance
from services.deid.service.profiles import current_profile, profile_of

if TYPE_CHECKING:
    from services.deid.bootstrap import Deid

log = logging.getLogger("imarc.deid")


@dataclass(frozen=True)
class Scanned:
    instances: int
    findings: int
    #: instances whose original or curated object is gone, or was never recorded
    skipped: int


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


async def rescan(deid: Deid, collection: str) -> Scanned:
    """Scan every de-identified instance of ``collection`` again under its current
    profile's retained options; returns how many were scanned and found."""
    await queries.known(deid.db, collection)
    async with deid.db.session() as s:
        row = await current_profile(s, collection)
        instances = list(await s.scalars(select(Instance).where(Instance.collection == collection)))
    retained = profile_of(row).options if row is not None else frozenset()
    gate = asyncio.Semaphore(max(1, deid.workers * 2))

    async def scan(instance: Instance) -> int | None:
        async with gate:
            return await _one(deid, instance, retained)

    results = await asyncio.gather(*(scan(i) for i in instances))
    done = [n for n in results if n is not None]
    log.info(
        "scanned %d instances again: %d findings",
        len(done),
        sum(done),
        extra={"service": "deid", "collection": collection},
    )
    return Scanned(len(done), sum(done), len(results) - len(done))
