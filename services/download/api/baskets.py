"""Baskets: a list of series kept under an id, handed out as a Data Retriever manifest."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.common.app import NotFound
from services.common.security import CurrentPrincipal
from services.download import queries, service
from services.download.api.deps import DownloadDep
from services.download.api.manifests import manifest_response, manifest_text
from services.download.schemas import BasketIn, BasketOut

router = APIRouter(prefix="/api/download/baskets", tags=["download"])


@router.post("", status_code=201, response_model=BasketOut)
async def create(
    body: BasketIn, request: Request, download: DownloadDep, principal: CurrentPrincipal
) -> BasketOut:
    """A basket of the series given, or of those a search finds; no cap on its size."""
    uids = body.series
    if body.search is not None:
        uids = await queries.search(download.db, principal, body.search)
        if not uids:
            raise NotFound("the search finds no series you can download; widen it or log in")
    basket_id = await service.create_basket(download, principal, uids)
    return BasketOut(
        id=basket_id,
        series=len(dict.fromkeys(uids)),
        manifest_url=str(request.url_for("basket_manifest", basket_id=basket_id)),
        manifest=manifest_text(request, await _series(download, basket_id), basket_id),
    )


@router.get("/{basket_id}/manifest", name="basket_manifest")
async def manifest(basket_id: str, request: Request, download: DownloadDep) -> Response:
    """The basket as an NBIA Data Retriever manifest (.tcia)."""
    return manifest_response(request, await _series(download, basket_id), basket_id)


async def _series(download: DownloadDep, basket_id: str) -> list[str]:
    uids = await queries.basket(download.db, basket_id)
    if uids is None:
        raise NotFound(f"there is no basket {basket_id}; make one with POST /api/download/baskets")
    return uids
