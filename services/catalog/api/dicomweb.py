"""DICOMweb QIDO-RS (PS3.18 §10.6): search the public catalog for studies, series and
instances, with the NBIA API's access rules (public collections to anyone, limited ones
with their licence). Answers are ``application/dicom+json``; a browser viewer on another
origin may call them when the origin is listed in ``IMARC_DICOMWEB_CORS_ORIGINS``.
WADO-RS (retrieval) is served by the download service under the same prefix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic_core import to_json

from services.catalog.api.deps import CatalogDep
from services.catalog.bootstrap import Catalog
from services.catalog.domain import qido
from services.catalog.queries import dicomweb as q
from services.catalog.queries.access import visible
from services.common.app import DomainError
from services.common.security import CurrentPrincipal

router = APIRouter(prefix="/dicomweb", tags=["DICOMweb (QIDO-RS)"])
MEDIA_TYPE = "application/dicom+json"


class BadSearch(DomainError):
    status = 400


def _search(request: Request) -> qido.Search:
    try:
        return qido.parse(request.query_params.multi_items())
    except qido.QidoError as e:
        raise BadSearch(str(e)) from None


def cors_headers(request: Request, catalog: Catalog) -> dict[str, str]:
    """CORS headers for a browser on another origin, when the settings allow it."""
    origin = request.headers.get("origin")
    allowed = catalog.cors_origins
    if not origin or not allowed:
        return {}
    if "*" in allowed:
        return {"Access-Control-Allow-Origin": "*"}
    if origin in allowed:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {}


def _answer(objects: list[dict[str, Any]], request: Request, catalog: Catalog) -> Response:
    return Response(to_json(objects), media_type=MEDIA_TYPE, headers=cors_headers(request, catalog))


def _study_object(found: dict[str, Any], search: qido.Search) -> dict[str, Any]:
    out = qido.select(found["header"], qido.STUDY_TAGS, search)
    out[qido.MODALITIES_IN_STUDY] = qido.element("CS", *sorted(found["modalities"]))
    out[qido.NUMBER_OF_STUDY_SERIES] = qido.element("IS", found["series"])
    out[qido.NUMBER_OF_STUDY_INSTANCES] = qido.element("IS", found["instances"])
    return dict(sorted(out.items()))


def _series_object(
    header: Mapping[str, Any], images: int, search: qido.Search, *, with_study: bool
) -> dict[str, Any]:
    tags = qido.SERIES_TAGS + (qido.STUDY_TAGS if with_study else ())
    out = qido.select(header, tags, search)
    out[qido.NUMBER_OF_SERIES_INSTANCES] = qido.element("IS", images)
    return dict(sorted(out.items()))


async def _studies(
    request: Request, catalog: Catalog, principal: Any, study: str | None = None
) -> Response:
    search = _search(request)
    async with catalog.read() as conn:
        found = await q.studies_(conn, await visible(conn, principal), search, study)
    return _answer([_study_object(f, search) for f in found], request, catalog)


@router.get("/studies", response_class=Response)
async def search_studies(
    request: Request, catalog: CatalogDep, principal: CurrentPrincipal
) -> Response:
    """Studies matching the query (PS3.18 §10.6.1, SearchForStudies)."""
    return await _studies(request, catalog, principal)


async def _series(
    request: Request, catalog: Catalog, principal: Any, study: str | None = None
) -> Response:
    search = _search(request)
    async with catalog.read() as conn:
        found = await q.series_(conn, await visible(conn, principal), search, study)
    objects = [_series_object(h, n, search, with_study=study is None) for h, n in found]
    return _answer(objects, request, catalog)


@router.get("/series", response_class=Response)
async def search_all_series(
    request: Request, catalog: CatalogDep, principal: CurrentPrincipal
) -> Response:
    """Series of any study matching the query (SearchForSeries)."""
    return await _series(request, catalog, principal)


@router.get("/studies/{study}/series", response_class=Response)
async def search_series(
    study: str, request: Request, catalog: CatalogDep, principal: CurrentPrincipal
) -> Response:
    """Series of one study matching the query (SearchForSeries)."""
    return await _series(request, catalog, principal, study)


async def _instances(
    request: Request,
    catalog: Catalog,
    principal: Any,
    study: str | None = None,
    series: str | None = None,
) -> Response:
    search = _search(request)
    async with catalog.read() as conn:
        found = await q.instances_(conn, await visible(conn, principal), search, study, series)
    tags = qido.INSTANCE_TAGS
    if series is None:
        tags += qido.SERIES_TAGS
    if study is None:
        tags += qido.STUDY_TAGS
    return _answer([qido.select(h, tags, search) for h in found], request, catalog)


@router.get("/instances", response_class=Response)
async def search_all_instances(
    request: Request, catalog: CatalogDep, principal: CurrentPrincipal
) -> Response:
    """Instances of any series matching the query (SearchForInstances)."""
    return await _instances(request, catalog, principal)


@router.get("/studies/{study}/instances", response_class=Response)
async def search_study_instances(
    study: str, request: Request, catalog: CatalogDep, principal: CurrentPrincipal
) -> Response:
    return await _instances(request, catalog, principal, study)


@router.get("/studies/{study}/series/{series}/instances", response_class=Response)
async def search_series_instances(
    study: str, series: str, request: Request, catalog: CatalogDep, principal: CurrentPrincipal
) -> Response:
    return await _instances(request, catalog, principal, study, series)


@router.options("/{path:path}", include_in_schema=False)
async def preflight(path: str, request: Request, catalog: CatalogDep) -> Response:
    """A browser's CORS preflight for a search."""
    headers = cors_headers(request, catalog)
    if headers:
        headers.update(
            {
                "Access-Control-Allow-Methods": "GET, OPTIONS",
                "Access-Control-Allow-Headers": "Authorization, Accept, Content-Type",
                "Access-Control-Max-Age": "600",
            }
        )
    return Response(status_code=204, headers=headers)
