"""The curation workspace of a collection: every collection at a glance, a manager's
settings, bulk review, the submitter's approval, tag inventories and their diff, the
residual-PHI findings, and the audit of overrides."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from services.common.security import AuthenticatedPrincipal, Principal, forbid
from services.qc import queries, service, workspace
from services.qc.api.deps import QcDep
from services.qc.domain import SeriesFilter
from services.qc.inventory import diff
from services.qc.schemas import (
    ApproveIn,
    ApproveOut,
    AuditOut,
    BulkReviewIn,
    BulkReviewOut,
    FindingOut,
    Glance,
    InventoryChange,
    InventoryRow,
    SettingsIn,
    SettingsOut,
    inventory_rows,
)
from services.qc.service import inventory as inventories

router = APIRouter(prefix="/api/qc", tags=["qc"])
Zone = Literal["curation", "public"]


def _may_view(principal: Principal, collection: str) -> bool:
    return principal.can_curate(collection) or principal.can_manage(collection)


@router.get("/collections", response_model=list[Glance])
async def at_a_glance(qc: QcDep, principal: AuthenticatedPrincipal) -> list[Glance]:
    """Submission status at a glance: every collection the caller curates or manages."""
    rows = await workspace.at_a_glance(qc.db, None)
    return [Glance(**r) for r in rows if _may_view(principal, r["collection"])]


@router.patch("/collections/{collection}/settings", response_model=SettingsOut)
async def settings(
    collection: str, body: SettingsIn, qc: QcDep, principal: AuthenticatedPrincipal
) -> SettingsOut:
    row = await service.configure(
        qc,
        principal,
        collection,
        status=body.status,
        priority=body.priority,
        submitter_approval=body.submitter_approval,
    )
    return SettingsOut(
        collection=row.collection,
        status=row.status,
        priority=row.priority,
        submitter_approval=row.submitter_approval,
    )


@router.put("/collections/{collection}/review", response_model=BulkReviewOut)
async def review_many(
    collection: str, body: BulkReviewIn, qc: QcDep, principal: AuthenticatedPrincipal
) -> BulkReviewOut:
    """One review decision for every series the filter selects (published ones excepted)."""
    which = SeriesFilter(
        states=tuple(body.only_states),
        modality=body.modality,
        flagged=body.flagged,
        series=tuple(body.series),
    )
    uids = await service.review_many(qc, principal, collection, which, body.state, body.comment)
    return BulkReviewOut(state=body.state, series=uids)


@router.post("/collections/{collection}/approve", response_model=ApproveOut)
async def approve(
    collection: str, body: ApproveIn, qc: QcDep, principal: AuthenticatedPrincipal
) -> ApproveOut:
    """The submitter approves the de-identified series (all, or those listed)."""
    return ApproveOut(approved=await service.approve(qc, principal, collection, body.series))


def _csv(rows: list[InventoryRow]) -> PlainTextResponse:
    out = io.StringIO()
    fields = list(InventoryRow.model_fields)
    w = csv.DictWriter(out, fieldnames=fields)
    w.writeheader()
    for r in rows:
        w.writerow(r.model_dump())
    return PlainTextResponse(out.getvalue(), media_type="text/csv")


@router.get(
    "/collections/{collection}/inventory",
    response_model=list[InventoryRow],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def inventory(
    collection: str,
    qc: QcDep,
    principal: AuthenticatedPrincipal,
    zone: Zone = "curation",
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> list[InventoryRow] | PlainTextResponse:
    """Every value of every text, date and private element, per device, with counts."""
    if not _may_view(principal, collection):
        raise forbid(f"see the inventory of collection {collection}")
    await inventories.catch_up(qc)
    rows = inventory_rows(await workspace.inventory(qc.db, collection, zone))
    return _csv(rows) if format == "csv" else rows


@router.get("/collections/{collection}/inventory/diff", response_model=list[InventoryChange])
async def inventory_diff(
    collection: str,
    qc: QcDep,
    principal: AuthenticatedPrincipal,
    before: Zone = "curation",
    after: Zone = "public",
) -> list[InventoryChange]:
    """What differs between two inventories of the collection (by default: curation vs
    public, e.g. series not published yet, or a value that should not be public)."""
    if not _may_view(principal, collection):
        raise forbid(f"see the inventory of collection {collection}")
    await inventories.catch_up(qc)
    a = await workspace.inventory(qc.db, collection, before)
    b = await workspace.inventory(qc.db, collection, after)
    return [
        InventoryChange(
            device=c.key[0],
            section=c.key[1],
            path=c.key[2],
            vr=c.key[3],
            creator=c.key[4],
            value=c.key[5],
            before=c.before,
            after=c.after,
        )
        for c in diff(a, b)
    ]


@router.get("/collections/{collection}/findings", response_model=list[FindingOut])
async def findings(
    collection: str, qc: QcDep, principal: AuthenticatedPrincipal
) -> list[FindingOut]:
    """Residual-PHI findings: where an identifier of the original record was found in a
    de-identified instance, and of what kind — never the value."""
    if not _may_view(principal, collection):
        raise forbid(f"see the findings of collection {collection}")
    return [
        FindingOut(
            series_instance_uid=f.series_instance_uid,
            sop_instance_uid=f.sop_instance_uid,
            path=f.path,
            kind=f.kind,
        )
        for f in await workspace.findings(qc.db, collection)
    ]


@router.get("/collections/{collection}/audit", response_model=list[AuditOut])
async def audit(collection: str, qc: QcDep, principal: AuthenticatedPrincipal) -> list[AuditOut]:
    if not principal.can_manage(collection):
        raise forbid(f"see the audit of collection {collection}")
    return [
        AuditOut(action=a.action, by=a.by, at=a.at, why=a.why, subject=a.subject)
        for a in await workspace.audit(qc.db, collection)
    ]


__all__ = ["queries", "router"]
