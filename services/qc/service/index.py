"""The curation index: where each submitted instance stands, kept from intake's and
deid's events (with the residual-PHI findings deid's scan reported)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from services.common.events import InstanceDeidentified, InstanceHeld, InstanceReceived
from services.common.messaging import UnitOfWork
from services.common.persistence import insert_ignore
from services.qc.domain import EPOCH, ReviewState, Stage, same_object, supersedes
from services.qc.models import Finding, Instance, Series

#: the instance's row for update; its JSON (header, inventory keys) is not read back only
#: to be replaced or left alone
_LOCKED = (
    select(Instance)
    .where(Instance.instance_id == bindparam("instance_id"))
    .options(defer(Instance.header), defer(Instance.inventory_keys))
    .with_for_update()
)


async def _locked_instance(s: AsyncSession, instance_id: str, collection: str) -> Instance:
    """The instance's row, created if new, locked for this transaction (competing
    consumers of different queues may touch the same instance at once)."""
    row = await s.scalar(_LOCKED, {"instance_id": instance_id})
    if row is not None:  # the common case: one statement
        return row
    new = {
        "instance_id": instance_id,
        "collection": collection,
        "stage": Stage.RECEIVED,
        "stage_at": EPOCH,
        "site": "",
        "filename": "",
    }
    await insert_ignore(s, Instance, [new])
    row = await s.scalar(_LOCKED, {"instance_id": instance_id})
    assert row is not None
    return row


async def instance_received(uow: UnitOfWork, p: InstanceReceived, at: datetime) -> None:
    if supersedes(at, EPOCH):  # a new instance is written as received in one statement
        first = {
            "instance_id": p.instance_id,
            "collection": p.collection,
            "stage": Stage.RECEIVED,
            "stage_at": at,
            "received_at": at,
            "site": p.site,
            "filename": p.filename,
        }
        if await insert_ignore(uow.session, Instance, [first]):
            return
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
    had_findings = inst.curation_key is not None  # only a de-identified instance has any
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
    await _record_findings(s, p, replace=had_findings)
    inst.findings = len(p.findings)
    series = {
        "series_instance_uid": p.series_instance_uid,
        "collection": p.collection,
        "study_instance_uid": p.study_instance_uid,
        "patient_id": p.patient_id,
        "modality": p.modality,
        "review_state": ReviewState.NOT_REVIEWED,
    }
    await insert_ignore(s, Series, [series])


async def _record_findings(s: AsyncSession, p: InstanceDeidentified, *, replace: bool) -> None:
    """The scan's findings for this de-identification replace the instance's earlier ones
    (``replace``: it may have some)."""
    if replace:
        await s.execute(delete(Finding).where(Finding.instance_id == p.instance_id))
    rows = [
        {
            "instance_id": p.instance_id,
            "path": f.path[:512],
            "kind": f.kind,
            "collection": p.collection,
            "series_instance_uid": p.series_instance_uid,
            "sop_instance_uid": p.sop_instance_uid,
        }
        for f in {(f.path, f.kind): f for f in p.findings}.values()
    ]
    await insert_ignore(s, Finding, rows)
