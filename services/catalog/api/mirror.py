"""A mirror site's sources: ``PUT /api/catalog/mirror`` starts (or changes) following a
site's feed, ``GET /api/catalog/mirror`` tells how far each source has come (admins)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field
from sqlalchemy import select

from services.catalog.api.deps import CatalogDep
from services.catalog.domain.mirror import NOT_A_MIRROR, NotAMirror, normalise_url
from services.catalog.models import mirror_sources
from services.common.app import Forbidden
from services.common.persistence import insert_ignore
from services.common.security import AuthenticatedPrincipal, Principal

router = APIRouter(prefix="/api/catalog/mirror", tags=["mirror"])


class SourceIn(BaseModel):
    url: str = Field(description="base URL of the imarc site to mirror")
    collections: list[str] = Field(default_factory=list, description="empty: all it may see")
    token: str = Field("", description="a token of the mirrored site (for limited collections)")
    follow: bool = Field(False, description="keep following; else stop once caught up")


def _admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("only an administrator of this site may manage what it mirrors")


def _status(row: Any) -> dict[str, Any]:
    out = {k: row[k] for k in row if k != "token"}
    out["authenticated"] = bool(row["token"])
    return out


@router.put("")
async def follow(
    catalog: CatalogDep,
    principal: AuthenticatedPrincipal,
    body: Annotated[SourceIn, Body()],
) -> dict[str, Any]:
    """Mirror the site at ``url``: from where this mirror left it, or from the beginning."""
    _admin(principal)
    if catalog.follower is None:
        raise NotAMirror(NOT_A_MIRROR)
    url = normalise_url(body.url)
    now = datetime.now(UTC)
    settings = {
        "collections": body.collections,
        "token": body.token,
        "follow": body.follow,
        "caught_up": False,
        "updated_at": now,
    }
    async with catalog.uow() as uow:
        s = uow.session
        new = {"url": url, "cursor": "", "entries": 0, "instances": 0, "bytes": 0,
               "state": "following", **settings}  # fmt: skip
        if not await insert_ignore(s, mirror_sources, [new], key=("url",)):
            await s.execute(
                mirror_sources.update().where(mirror_sources.c.url == url).values(**settings)
            )
        row = (
            (await s.execute(select(mirror_sources).where(mirror_sources.c.url == url)))
            .mappings()
            .one()
        )
    catalog.follower.wake()
    return _status(row)


@router.get("")
async def sources(catalog: CatalogDep, principal: AuthenticatedPrincipal) -> list[dict[str, Any]]:
    """Each source this site mirrors: its cursor, what was applied and whether it is caught up."""
    _admin(principal)
    async with catalog.read() as conn:
        rows = (await conn.execute(select(mirror_sources))).mappings().all()
    return [_status(r) for r in rows]
