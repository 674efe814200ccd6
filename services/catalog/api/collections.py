"""Collections: NBIA's collection lists and descriptions, and the catalog's summary of
each collection for the CLI."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.api.deps import CatalogDep
from services.catalog.api.nbia import nbia_get
from services.catalog.domain.nbia import COLLECTION_DESCRIPTION_COLS
from services.catalog.queries import nbia as queries
from services.catalog.queries.access import Visible, visible
from services.catalog.queries.nbia import Row
from services.catalog.schemas import CollectionSummary
from services.common.security import CurrentPrincipal

router = APIRouter()


@nbia_get(router, "getCollectionValues", columns=("Collection",))
async def collection_values(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    """The collections with something published that the caller may see."""
    return await queries.collection_values(conn, vis)


@nbia_get(router, "getCollectionValuesAndCounts", columns=("Collection", "Count", "Authorized"))
async def collection_counts(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    """Each collection with its number of patients."""
    return await queries.collection_counts(conn, vis)


@nbia_get(
    router, "getCollectionDescriptions", "collectionName", columns=COLLECTION_DESCRIPTION_COLS
)
async def descriptions(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    """Each collection's description (HTML) and DOI."""
    return queries.collection_descriptions(vis, a)


@router.get("/api/catalog/collections", response_model=list[CollectionSummary], tags=["catalog"])
async def list_collections(
    catalog: CatalogDep, principal: CurrentPrincipal
) -> list[dict[str, Any]]:
    """The collections the caller may see, with their licence and counts."""
    async with catalog.read() as conn:
        return await queries.collection_summaries(conn, await visible(conn, principal))
