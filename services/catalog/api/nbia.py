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
V1 = "/v1"
V4_DATES = "%m-%d-%Y"

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
    allowed: Sequence[str] | None,
    required: Sequence[str] = (),
    dates: Sequence[str] = (),
    date_format: str = V4_DATES,
) -> dict[str, Any]:
    """The query parameters by NBIA's rules (:class:`BadRequest` when they break one):
    v4 refuses names it does not know (``allowed``; None lets any through, as v1 does);
    date parameters become datetimes and ``format`` is always set."""
    given = request.query_params
    if allowed is not None and (message := nbia.unknown_parameter(given.keys(), allowed)):
        raise BadRequest(message)
    args: dict[str, Any] = {k: v.strip() for k, v in given.items() if v.strip()}
    for p in required:
        if p not in args:
            raise BadRequest(nbia.missing_parameter(p))
    for p in dates:
        if p in args:
            if (when := nbia.parse_nbia_date(args[p], date_format)) is None:
                raise BadRequest(nbia.bad_date(p, date_format))
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
    version: str = V4,
    date_format: str = V4_DATES,
) -> Callable[[Query], Query]:
    """Register ``GET /nbia-api/services/<version>/<name>`` (``version`` "" for NBIA's
    unversioned paths) answering with ``query``'s rows. v4 refuses unknown parameters;
    v1 and the unversioned paths ignore them, as NBIA does."""
    allowed = ((*params, "format") if accepts_format else params) if version == V4 else None

    def register(query: Query) -> Query:
        async def endpoint(
            request: Request, principal: CurrentPrincipal, catalog: CatalogDep
        ) -> Response:
            try:
                args = parameters(request, allowed, required, dates, date_format)
            except BadRequest as e:
                return bad_request(str(e))
            async with catalog.read() as conn:
                rows = await query(conn, await visible(conn, principal), args)
            return respond(rows, columns, args["format"])

        endpoint.__doc__ = query.__doc__
        label = f"NBIA {version.strip('/') or 'legacy'} {name}"
        router.add_api_route(
            f"{PREFIX}{version}/{name}", endpoint, methods=["GET"],
            name=f"nbia_{version.strip('/')}_{name}", response_class=Response, summary=label,
            tags=[f"NBIA {version.strip('/') or 'legacy'}"],
        )  # fmt: skip
        return query

    return register
