"""NBIA's simple search, the manifests made from a search or a list of series, and the
lookup of a DOI's collections or series (form POSTs, as NBIA takes them)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import FormData

from services.catalog.api.deps import CatalogDep
from services.catalog.api.nbia import PREFIX, V4, bad_request
from services.catalog.domain import search as simple
from services.catalog.domain.collections import CollectionInfo
from services.catalog.queries import search as q
from services.catalog.queries.access import visible
from services.common.manifest import MEDIA_TYPE, manifest_lines
from services.common.security import CurrentPrincipal

router = APIRouter(tags=["NBIA search"])


def _form(form: FormData) -> dict[str, str]:
    return {k: str(v) for k, v in form.items()}


def manifest(request: Request, series: Sequence[str], *, include_annotation: bool) -> Response:
    """A ``.tcia`` manifest of ``series`` naming this server's v4 API."""
    server = str(request.base_url).rstrip("/") + PREFIX + V4
    basket = str(int(time.time() * 1000))  # NBIA: manifest-<epoch millis>.tcia
    text = "".join(
        manifest_lines(
            series, server_url=server, basket_id=basket, include_annotation=include_annotation
        )
    )
    return Response(text, media_type=MEDIA_TYPE)


async def _search(
    request: Request, catalog: Any, principal: Any, *, paged: bool
) -> tuple[simple.SimpleSearch, list[simple.Patient]] | Response:
    try:
        s = simple.parse_form(_form(await request.form()), paged=paged)
    except simple.SearchError as e:
        return bad_request(str(e))
    async with catalog.read() as conn:
        rows = await q.simple_search(conn, await visible(conn, principal), s)
    return s, simple.patients(rows, s)


async def simple_search(
    request: Request, catalog: CatalogDep, principal: CurrentPrincipal
) -> Response:
    """Patients with series matching the criteria, a page at a time, with the number of
    patients per body part, modality, collection and species."""
    found = await _search(request, catalog, principal, paged=True)
    if isinstance(found, Response):
        return found
    s, patients = found
    return JSONResponse(simple.summary(patients, s))


async def manifest_for_simple_search(
    request: Request, catalog: CatalogDep, principal: CurrentPrincipal
) -> Response:
    """A manifest of the series a simple search matches (of the patients in the page
    asked for, when the form pages)."""
    found = await _search(request, catalog, principal, paged=False)
    if isinstance(found, Response):
        return found
    s, patients = found
    series = [uid for p in s.page(patients) for uid in p.series]
    return manifest(request, series, include_annotation=False)


for path in (
    f"{PREFIX}{V4}/getSimpleSearch",
    f"{PREFIX}/getSimpleSearchWithModalityAndBodyPartPaged",
):
    router.add_api_route(path, simple_search, methods=["POST"], response_class=Response)
for path in (f"{PREFIX}{V4}/getManifestForSimpleSearch", f"{PREFIX}/getManifestForSimpleSearch"):
    router.add_api_route(
        path, manifest_for_simple_search, methods=["POST"], response_class=Response
    )


@router.post(f"{PREFIX}/getManifestTextV2", response_class=Response)
async def manifest_text(request: Request) -> Response:
    """A manifest of the listed series (form ``list``, repeated or comma-joined;
    ``includeAnnotation``), as NBIA writes it: the list is not checked against the
    catalog (a download checks each series' access)."""
    form = await request.form()
    uids = [u.strip() for v in form.getlist("list") for u in str(v).split(",") if u.strip()]
    if not uids:
        return bad_request("A parameter, list is required for this API call.")
    annotation = str(form.get("includeAnnotation", "")).lower() == "true"
    return manifest(request, uids, include_annotation=annotation)


def _same_doi(coll: CollectionInfo, doi: str) -> bool:
    wanted = CollectionInfo(id=0, name="", doi=doi).doi_url
    return (
        wanted is not None and coll.doi_url is not None and wanted.lower() == coll.doi_url.lower()
    )


@router.post(f"{PREFIX}{V4}/getCollectionOrSeriesForDOI", response_class=Response)
async def collection_or_series_for_doi(
    request: Request, catalog: CatalogDep, principal: CurrentPrincipal
) -> Response:
    """The collections a DOI describes (form ``DOI``), or their series
    (``CollectionOrSeries=series``). NBIA spells one key ``thirdPartyAnanlysis``."""
    form = await request.form()
    doi = str(form.get("DOI", "")).strip()
    if not doi:
        return bad_request("A parameter, DOI is required for this API call.")
    want_series = str(form.get("CollectionOrSeries", "")).strip().lower() == "series"
    async with catalog.read() as conn:
        vis = await visible(conn, principal)
        names = sorted(n for n, c in vis.collections.items() if _same_doi(c, doi))
        if want_series:
            uids = await q.series_of(conn, vis, names)
    if not names:
        return Response(b"", media_type="application/json")
    if want_series:
        rows = [
            {"collection": n, "thirdPartyAnanlysis": "NO", "seriesInstanceUID": u, "authorized": 1}
            for n, u in uids
        ]
    else:
        rows = [{"collection": n, "thirdPartyAnanlysis": "NO", "authorized": 1} for n in names]
    return JSONResponse(rows) if rows else Response(b"", media_type="application/json")
