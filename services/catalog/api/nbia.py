"""How an NBIA search endpoint reads its request and writes its answer.

NBIA's rules, the same for every endpoint: unknown parameter names (case-sensitive) and
missing required ones are a 400 with NBIA's plain-text message (which tcia_utils logs as
is), empty values count as absent, dates are ``MM-DD-YYYY``, ``format`` picks the output
and no result is an empty 200. The resource modules register their queries with
:func:`nbia_get`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.api.deps import CatalogDep
from services.catalog.domain import formats, nbia
from services.catalog.queries.access import Visible, visible
from services.catalog.queries.nbia import Row
from services.common.security import CurrentPrincipal

PREFIX = "/nbia-api/services"
V4 = "/v4"

#: the query behind an endpoint: (connection, what the caller may see, parameters)
Query = Callable[[AsyncConnection, Visible, dict[str, Any]], Awaitable[list[Row] | bytes]]


class BadRequest(Exception):
    """A request NBIA answers with a plain-text 400."""


def bad_request(message: str) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=400)


def respond(
    rows: Sequence[Row] | bytes, columns: Sequence[str], fmt: str, filename: str | None = None
) -> Response:
    if isinstance(rows, bytes):  # already rendered (getSeries as JSON)
        return Response(rows, media_type="application/json")
    out = formats.render(rows, columns, fmt, filename=filename)
    return Response(out.body, media_type=out.media_type, headers=out.headers)


def output_format(value: str | None, default: str = "json") -> str:
    fmt = (value or default).lower()
    if fmt not in formats.FORMATS:
        raise BadRequest(formats.bad_format(fmt))
    return fmt


def parameters(
    request: Request,
    allowed: Sequence[str],
    required: Sequence[str] = (),
    dates: Sequence[str] = (),
) -> dict[str, Any]:
    """The query parameters by NBIA's rules (:class:`BadRequest` when they break one);
    date parameters become datetimes and ``format`` is always set."""
    given = request.query_params
    if message := nbia.unknown_parameter(given.keys(), allowed):
        raise BadRequest(message)
    args: dict[str, Any] = {k: v.strip() for k, v in given.items() if v.strip()}
    for p in required:
        if p not in args:
            raise BadRequest(nbia.missing_parameter(p))
    for p in dates:
        if p in args:
            if (when := nbia.parse_nbia_date(args[p])) is None:
                raise BadRequest(nbia.bad_date(p))
            args[p] = when
    args["format"] = output_format(args.get("format"))
    return args


def nbia_get(
    router: APIRouter,
    name: str,
    *params: str,
    columns: Sequence[str],
    required: Sequence[str] = (),
    dates: Sequence[str] = (),
    accepts_format: bool = True,
) -> Callable[[Query], Query]:
    """Register ``GET /nbia-api/services/v4/<name>`` answering with ``query``'s rows."""
    allowed = (*params, "format") if accepts_format else params

    def register(query: Query) -> Query:
        async def endpoint(
            request: Request, principal: CurrentPrincipal, catalog: CatalogDep
        ) -> Response:
            try:
                args = parameters(request, allowed, required, dates)
            except BadRequest as e:
                return bad_request(str(e))
            async with catalog.read() as conn:
                rows = await query(conn, await visible(conn, principal), args)
            return respond(rows, columns, args["format"])

        endpoint.__doc__ = query.__doc__
        router.add_api_route(
            f"{PREFIX}{V4}/{name}", endpoint, methods=["GET"], name=f"nbia_{name}",
            response_class=Response, summary=f"NBIA v4 {name}", tags=["NBIA v4"],
        )  # fmt: skip
        return query

    return register
