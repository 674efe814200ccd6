"""A collection in curation: its status at a glance, its series, and publishing them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from services.common.security import AuthenticatedPrincipal, forbid
from services.qc import queries, service
from services.qc.api.deps import QcDep
from services.qc.schemas import CollectionStatus, PublishOut, PublishRequest, SeriesOut

router = APIRouter(prefix="/api/qc/collections", tags=["qc"])


@router.get("/{collection}/status", response_model=CollectionStatus)
async def status(collection: str, qc: QcDep, principal: AuthenticatedPrincipal) -> CollectionStatus:
    if not (principal.has_role("submitter", collection) or principal.can_curate(collection)):
        raise forbid(f"see the status of collection {collection}")
    return await queries.collection_status(qc.db, collection)


@router.get("/{collection}/series", response_model=list[SeriesOut])
async def series(collection: str, qc: QcDep, principal: AuthenticatedPrincipal) -> list[SeriesOut]:
    if not principal.can_curate(collection):
        raise forbid(f"review the series of collection {collection}")
    return await queries.list_series(qc.db, collection)


@router.post("/{collection}/publish", response_model=PublishOut)
async def publish(
    collection: str,
    qc: QcDep,
    principal: AuthenticatedPrincipal,
    body: Annotated[PublishRequest | None, Body()] = None,
) -> PublishOut:
    if not principal.can_manage(collection):
        raise forbid(f"publish collection {collection}")
    req = body or PublishRequest()
    uids, n = await service.publish(
        qc, principal, collection, req.series, override_findings=req.override_findings, why=req.why
    )
    return PublishOut(published=uids, instances=n)
