"""The qc HTTP API: collection status, the curation index, review, publish, withdraw."""

from __future__ import annotations

from fastapi import APIRouter, Body, HTTPException

from services.common.security import AuthenticatedPrincipal, forbid
from services.common.service import ServiceContext
from services.qc import handlers
from services.qc.domain import Conflict, CurationError, NotFound
from services.qc.schemas import (
    CollectionStatus,
    PublishIn,
    PublishOut,
    ReviewIn,
    SeriesOut,
    WithdrawIn,
    WithdrawOut,
)


def _http(e: CurationError) -> HTTPException:
    return HTTPException(
        404 if isinstance(e, NotFound) else 409 if isinstance(e, Conflict) else 400, str(e)
    )


def router(ctx: ServiceContext) -> APIRouter:
    r = APIRouter(prefix="/api/qc", tags=["qc"])

    @r.get("/collections/{collection}/status", response_model=CollectionStatus)
    async def status(collection: str, principal: AuthenticatedPrincipal) -> dict[str, object]:
        if not (principal.has_role("submitter", collection) or principal.can_curate(collection)):
            raise forbid(f"see the status of collection {collection}")
        try:
            return await handlers.collection_status(ctx, collection)
        except CurationError as e:
            raise _http(e) from e

    @r.get("/collections/{collection}/series", response_model=list[SeriesOut])
    async def series(collection: str, principal: AuthenticatedPrincipal) -> list[dict[str, object]]:
        if not principal.can_curate(collection):
            raise forbid(f"review the series of collection {collection}")
        return await handlers.list_series(ctx, collection)

    @r.put("/series/{uid}/review", response_model=SeriesOut)
    async def review(
        uid: str, body: ReviewIn, principal: AuthenticatedPrincipal
    ) -> dict[str, object]:
        try:
            return await handlers.set_review(ctx, principal, uid, body.state)
        except CurationError as e:
            raise _http(e) from e

    @r.post("/collections/{collection}/publish", response_model=PublishOut)
    async def publish(
        collection: str, principal: AuthenticatedPrincipal, body: PublishIn | None = Body(None)
    ) -> PublishOut:
        if not principal.can_manage(collection):
            raise forbid(f"publish collection {collection}")
        try:
            uids, n = await handlers.publish(
                ctx, principal, collection, (body or PublishIn()).series
            )
        except CurationError as e:
            raise _http(e) from e
        return PublishOut(published=uids, instances=n)

    @r.post("/series/{uid}/withdraw", response_model=WithdrawOut)
    async def withdraw(
        uid: str, principal: AuthenticatedPrincipal, body: WithdrawIn | None = Body(None)
    ) -> WithdrawOut:
        try:
            done, n = await handlers.withdraw(ctx, principal, uid, (body or WithdrawIn()).reason)
        except CurationError as e:
            raise _http(e) from e
        return WithdrawOut(withdrawn=done, deleted=n)

    return r
