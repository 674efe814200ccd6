"""Shared carts: a user shares a list of series under a name; anyone opens it with NBIA's
v1 getContentsByName (tcia_utils ``getSharedCart``), seeing the series their access
allows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from services.catalog import service
from services.catalog.api.deps import CatalogDep
from services.catalog.api.nbia import PREFIX, V1, bad_request, respond
from services.catalog.domain import nbia_v1
from services.catalog.queries import search as q
from services.catalog.queries.access import visible
from services.common.security import AuthenticatedPrincipal, CurrentPrincipal

router = APIRouter()


@router.get(f"{PREFIX}{V1}/getContentsByName", response_class=Response, tags=["NBIA v1"])
async def contents_by_name(
    catalog: CatalogDep,
    principal: CurrentPrincipal,
    name: Annotated[str | None, Query()] = None,
) -> Response:
    """The series of a shared cart (always JSON, as NBIA answers it)."""
    if not name:
        return bad_request("A parameter, name is required for this API call.")
    async with catalog.read() as conn:
        vis = await visible(conn, principal)
        found = await q.shared_cart(conn, vis, name)
    rows = [nbia_v1.shared_cart_row(r, vis.info(r["collection"])) for r in found or ()]
    return respond(rows, nbia_v1.SHARED_CART_COLS, "json")


class CartIn(BaseModel):
    series: list[str] = Field(min_length=1, max_length=100_000)
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,100}$")


class CartOut(BaseModel):
    name: str
    series: int
    url: str


@router.post("/api/catalog/carts", response_model=CartOut, status_code=201, tags=["catalog"])
async def share(
    body: CartIn, request: Request, catalog: CatalogDep, principal: AuthenticatedPrincipal
) -> CartOut:
    """Share a list of published series under a name (given, or made up); the answer says
    where getContentsByName opens it."""
    uids = list(dict.fromkeys(body.series))
    name = body.name or service.cart_name()
    async with catalog.read() as conn:
        seen = await q.visible_series(conn, await visible(conn, principal), uids)
    async with catalog.uow() as uow:
        await service.share_cart(uow, principal.subject, name, uids, seen)
    url = str(request.url_for("contents_by_name").include_query_params(name=name))
    return CartOut(name=name, series=len(uids), url=url)
