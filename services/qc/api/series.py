"""One series in curation: a curator's review, a manager's withdrawal."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from services.common.security import AuthenticatedPrincipal
from services.qc import queries, service, workspace
from services.qc.api.deps import QcDep
from services.qc.domain import NotFound
from services.qc.schemas import (
    FindingOut,
    HistoryOut,
    InstanceOut,
    InventoryRow,
    ReviewWithComment,
    SeriesDetail,
    SeriesOut,
    WithdrawIn,
    WithdrawOut,
    inventory_rows,
)
from services.qc.service import images
from services.qc.service.inventory import series_inventory

router = APIRouter(prefix="/api/qc/series", tags=["qc"])


@router.put("/{uid}/review", response_model=SeriesOut)
async def review(
    uid: str, body: ReviewWithComment, qc: QcDep, principal: AuthenticatedPrincipal
) -> SeriesOut:
    await service.review(qc, principal, uid, body.state, body.comment)
    return await queries.one_series(qc.db, uid)


@router.get("/{uid}", response_model=SeriesDetail)
async def detail(uid: str, qc: QcDep, principal: AuthenticatedPrincipal) -> SeriesDetail:
    """A series with its slices (in order), review history and residual-PHI findings."""
    series = await workspace.series_of(qc.db, uid)
    if not (principal.can_curate(series.collection) or principal.can_manage(series.collection)):
        raise NotFound(f"series {uid} is not in curation; check the UID")
    summary = await queries.one_series(qc.db, uid)
    slices = []
    for inst in await workspace.instances_of(qc.db, uid):
        number = ((inst.header or {}).get("00200013") or {}).get("Value") or [None]
        slices.append(
            InstanceOut(
                instance_id=inst.instance_id,
                sop_instance_uid=inst.sop_instance_uid or "",
                instance_number=int(float(number[0])) if number[0] is not None else None,
                frames=await images.frames(qc, inst),
                findings=inst.findings,
            )
        )
    return SeriesDetail(
        **summary.model_dump(),
        history=[
            HistoryOut(state=h.state, by=h.by, at=h.at, comment=h.comment)
            for h in await workspace.history(qc.db, uid)
        ],
        findings=[
            FindingOut(
                series_instance_uid=f.series_instance_uid,
                sop_instance_uid=f.sop_instance_uid,
                path=f.path,
                kind=f.kind,
            )
            for f in await workspace.findings(qc.db, series.collection, uid)
        ],
        slices=slices,
    )


@router.get("/{uid}/inventory", response_model=list[InventoryRow])
async def inventory(uid: str, qc: QcDep, principal: AuthenticatedPrincipal) -> list[InventoryRow]:
    """The inventory of one series, from its instances' de-identified headers."""
    series = await workspace.series_of(qc.db, uid)
    if not (principal.can_curate(series.collection) or principal.can_manage(series.collection)):
        raise NotFound(f"series {uid} is not in curation; check the UID")
    return inventory_rows(series_inventory(await workspace.headers_of(qc.db, series=uid)))


@router.post("/{uid}/withdraw", response_model=WithdrawOut)
async def withdraw(
    uid: str,
    qc: QcDep,
    principal: AuthenticatedPrincipal,
    body: Annotated[WithdrawIn | None, Body()] = None,
) -> WithdrawOut:
    deleted = await service.withdraw(qc, principal, uid, (body or WithdrawIn()).reason)
    return WithdrawOut(withdrawn=uid, deleted=deleted)
