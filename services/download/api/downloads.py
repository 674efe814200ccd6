"""The download log of a collection, for its managers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.common.security import AuthenticatedPrincipal, forbid
from services.download import queries
from services.download.api.deps import DownloadDep
from services.download.schemas import DownloadOut

router = APIRouter(prefix="/api/download", tags=["download"])


@router.get("/collections/{collection}/downloads", response_model=list[DownloadOut])
async def downloads(
    collection: str,
    download: DownloadDep,
    principal: AuthenticatedPrincipal,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[DownloadOut]:
    """The latest downloads of a collection's series (its managers and admins)."""
    if not principal.can_manage(collection):
        raise forbid(f"see who downloaded collection {collection}")
    rows = await queries.recent_downloads(download.db, collection, limit)
    return [DownloadOut.model_validate(d) for d in rows]
