"""The mirror feed: ``GET /api/feed?after=CURSOR&limit=N`` (also under /api/catalog/feed).

Entries come in the order the feed numbered them, each with its ``cursor``; ``next`` is
the cursor to pass as ``after`` for the following page (the same one when nothing new
has come). A caller reads the collections it may see: limited collections appear only to
tokens that may read them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.catalog import feed
from services.catalog.api.deps import CatalogDep
from services.catalog.domain.feed import MAX_LIMIT, cursor, position_of
from services.catalog.feed_runner import sequence_pending
from services.catalog.queries.access import visible
from services.common.security import CurrentPrincipal

router = APIRouter(tags=["feed"])


@router.get("/api/feed")
@router.get("/api/catalog/feed", include_in_schema=False)
async def read_feed(
    catalog: CatalogDep,
    principal: CurrentPrincipal,
    after: Annotated[str | None, Query(description="cursor of the last entry applied")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """Public changes after ``after``: collections, series published and withdrawn."""
    start = position_of(after)
    if not catalog.replica:  # a replica reads the primary's numbers as replicated
        await sequence_pending(catalog.db)
    async with catalog.read() as conn:
        scope = (await visible(conn, principal)).scope()
        entries, last = await feed.read(conn, start, limit, scope)
    return {"entries": entries, "next": cursor(last), "more": len(entries) == limit}
