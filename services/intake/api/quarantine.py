"""The quarantine of a collection: list, count, inspect, release, reject."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.common.app import DomainError, NotFound
from services.common.security import AuthenticatedPrincipal, Principal, forbid
from services.intake.api.deps import IntakeDep
from services.intake.service import audit, quarantine
from services.intake.service.quarantine import MAX_BULK, Filter

router = APIRouter(prefix="/api/intake", tags=["intake"])
log = logging.getLogger("imarc.intake")
Stage = Literal["intake", "deid"]


class HeldOut(BaseModel):
    id: str
    submission_id: str
    filename: str = Field(description="as submitted; for C-STORE, the calling AE and association")
    site: str
    stage: str
    code: str
    reason: str
    held_at: datetime
    study_instance_uid: str
    series_instance_uid: str


class HeldDetail(HeldOut):
    header: dict[str, Any] = Field(description="DICOM JSON of the header, pixel data left out")


class Action(BaseModel):
    collection: str | None = None
    ids: list[str] | None = Field(None, max_length=MAX_BULK)
    reason: str | None = None
    stage: Stage | None = None
    submission: str | None = None
    why: str = Field(min_length=1, max_length=2000)


class ActionOut(BaseModel):
    done: list[str]
    refused: dict[str, str]


class NothingChosen(DomainError):
    status = 422


def _may_see(principal: Principal, collection: str) -> None:
    if not principal.can_curate(collection):
        raise forbid(f"see or change the quarantine of {collection}")


def _out(i: quarantine.Item) -> dict[str, Any]:
    return {k: v for k, v in vars(i).items() if k != "in_received"}


@router.get("/collections/{name}/quarantine", response_model=list[HeldOut])
async def listing(
    name: str,
    intake: IntakeDep,
    principal: AuthenticatedPrincipal,
    reason: str | None = None,
    stage: Stage | None = None,
    submission: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_BULK)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[HeldOut]:
    """Everything held in the collection, at intake and at de-id, grouped by study and
    series."""
    _may_see(principal, name)
    async with intake.db.session() as s:
        found = await quarantine.items(
            s, Filter(name, reason, stage, submission), limit=limit, offset=offset
        )
    return [HeldOut(**_out(i)) for i in found]


@router.get("/collections/{name}/quarantine/counts")
async def counts(
    name: str, intake: IntakeDep, principal: AuthenticatedPrincipal
) -> dict[str, dict[str, int]]:
    """Held now, by stage and reason code."""
    if not (principal.can_curate(name) or principal.can_submit(name)):
        raise forbid(f"see the counts of {name}")
    async with intake.db.session() as s:
        return await quarantine.counts(s, name)


@router.get("/quarantine/{instance_id}", response_model=HeldDetail)
async def show(
    instance_id: str, intake: IntakeDep, principal: AuthenticatedPrincipal
) -> HeldDetail:
    """A held instance and its header (for the roles that may see the quarantine zone)."""
    async with intake.db.session() as s:
        where = await quarantine.collections_of(s, [instance_id])
        if not where:
            raise NotFound(
                f"nothing held has id {instance_id}; `imarc quarantine list` shows what is"
            )
        collection = next(iter(where))
        _may_see(principal, collection)
        found = await quarantine.items(s, Filter(collection, ids=[instance_id]), limit=1)
        header = await quarantine.header(s, intake.store, Filter(collection), instance_id)
    return HeldDetail(**_out(found[0]), header=header)


async def _act(kind: str, body: Action, intake: IntakeDep, principal: Principal) -> ActionOut:
    if body.ids is None and not (
        body.collection and (body.reason or body.stage or body.submission)
    ):
        raise NothingChosen(
            "name the held instances: give their ids, or a collection and a reason, stage or "
            "submission"
        )
    if body.ids is not None:
        async with intake.db.session() as s:
            chosen = await quarantine.collections_of(s, body.ids)
        missing = set(body.ids) - {i for ids in chosen.values() for i in ids}
        refused = {i: "nothing held has this id" for i in sorted(missing)}
    else:
        assert body.collection is not None
        chosen = {body.collection: []}
        refused = {}
    done: list[str] = []
    for collection, ids in chosen.items():
        _may_see(principal, collection)
        f = Filter(
            collection,
            body.reason,
            body.stage,
            body.submission,
            ids if body.ids is not None else None,
        )
        async with intake.uow() as uow:
            if kind == "release":
                out = await quarantine.release(
                    uow, intake.source, f, by=principal.subject, why=body.why
                )
            else:
                out = await quarantine.reject(uow, f, by=principal.subject, why=body.why)
        for key in out.keys:
            await intake.store.delete("quarantine", key)
        done += out.done
        refused.update(out.refused)
        log.info(
            "%s %s %d held instances of %s", principal.subject, kind, len(out.done), collection
        )
    return ActionOut(done=done, refused=refused)


@router.post("/quarantine/release", response_model=ActionOut)
async def release(body: Action, intake: IntakeDep, principal: AuthenticatedPrincipal) -> ActionOut:
    """Release held instances (by id, or by collection and reason/stage/submission): each
    goes on from the stage that held it. Audited with who and why."""
    return await _act("release", body, intake, principal)


@router.post("/quarantine/reject", response_model=ActionOut)
async def reject(body: Action, intake: IntakeDep, principal: AuthenticatedPrincipal) -> ActionOut:
    """Reject held instances: deleted from quarantine. Audited with who and why."""
    return await _act("reject", body, intake, principal)


class AuditOut(BaseModel):
    at: datetime
    actor: str
    action: str
    instance_id: str
    submission_id: str
    detail: str


@router.get("/collections/{name}/audit", response_model=list[AuditOut])
async def audit_trail(
    name: str,
    intake: IntakeDep,
    principal: AuthenticatedPrincipal,
    limit: Annotated[int, Query(ge=1, le=MAX_BULK)] = 1000,
) -> list[AuditOut]:
    """What was replaced, released, rejected or refused in the collection, newest first."""
    _may_see(principal, name)
    async with intake.db.session() as s:
        rows = await audit.entries(s, name, limit)
    return [
        AuditOut(
            at=r.at,
            actor=r.actor,
            action=r.action,
            instance_id=r.instance_id,
            submission_id=r.submission_id,
            detail=r.detail,
        )
        for r in rows
    ]
