"""Usage figures: downloads and bytes by collection and month, distinct downloading users
by month — what an archive reports to its funders every month."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.common.reporting import MONTH, months
from services.common.security import AuthenticatedPrincipal, forbid
from services.download import queries
from services.download.api.deps import DownloadDep
from services.download.schemas import CollectionMonthUsage, MonthUsers, UsageOut

router = APIRouter(prefix="/api/download", tags=["download"])


@router.get("/usage", response_model=UsageOut)
async def usage(
    download: DownloadDep,
    principal: AuthenticatedPrincipal,
    since: Annotated[str | None, Query(pattern=MONTH, description="first month, YYYY-MM")] = None,
    until: Annotated[str | None, Query(pattern=MONTH, description="last month, YYYY-MM")] = None,
) -> UsageOut:
    """Downloads by collection and month; admins see every collection and the distinct
    downloading users by month, a collection's managers see their collections."""
    span = months(since, until)
    if principal.is_admin:
        collections: set[str] | None = None
    else:
        collections = {c for c in principal.collection_roles if principal.can_manage(c)}
        if not collections:
            raise forbid("see download usage (admins, and managers for their collections)")
    figures = await queries.usage(download.db, span.start, span.end, collections)
    return UsageOut(
        since=span.since,
        until=span.until,
        collections=[
            CollectionMonthUsage(
                collection=c, month=m, series_downloads=sd, image_downloads=im, bytes=b
            )
            for c, m, sd, im, b in figures.collections
        ],
        users=[MonthUsers(month=m, users=u, anonymous_downloads=a) for m, u, a in figures.users]
        if collections is None
        else [],
    )
