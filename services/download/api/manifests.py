"""Manifests (.tcia) of a collection or of a search, for the NBIA Data Retriever,
tcia_utils and ``imarc download``."""

from __future__ import annotations

import time
from collections.abc import Sequence

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.common.app import NotFound
from services.common.manifest import MEDIA_TYPE, manifest_lines
from services.common.security import CurrentPrincipal
from services.download import queries
from services.download.api.deps import DownloadDep
from services.download.schemas import SeriesSearch

router = APIRouter(prefix="/api/download", tags=["download"])


def manifest_text(request: Request, series: Sequence[str], basket_id: str) -> str:
    server = str(request.base_url).rstrip("/") + "/nbia-api/services/v4"
    return "".join(manifest_lines(series, server_url=server, basket_id=basket_id))


def manifest_response(request: Request, series: Sequence[str], basket_id: str) -> Response:
    return Response(
        manifest_text(request, series, basket_id),
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="manifest-{basket_id}.tcia"'},
    )


@router.get("/collections/{collection}/manifest")
async def of_collection(
    collection: str, request: Request, download: DownloadDep, principal: CurrentPrincipal
) -> Response:
    """Every published series of a collection that the caller may download."""
    uids = await queries.search(download.db, principal, SeriesSearch(collection=collection))
    if not uids:
        raise NotFound(
            f"collection {collection} has no series you can download; check its name "
            "(GET /nbia-api/services/v4/getCollectionValues) or log in"
        )
    return manifest_response(request, uids, f"{collection}-{int(time.time() * 1000)}")


@router.post("/manifests")
async def of_search(
    body: SeriesSearch, request: Request, download: DownloadDep, principal: CurrentPrincipal
) -> Response:
    """The series a search finds (see SeriesSearch), as a manifest."""
    uids = await queries.search(download.db, principal, body)
    if not uids:
        raise NotFound("the search finds no series you can download; widen it or log in")
    return manifest_response(request, uids, str(int(time.time() * 1000)))
