"""Series: NBIA's series listings, sizes, SOP Instance UIDs, DICOM tags and metadata, and
the catalog's own view of one series with its instances (for the CLI and mirrors)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.api.deps import CatalogDep
from services.catalog.api.nbia import (
    PREFIX,
    V4,
    BadRequest,
    bad_request,
    nbia_get,
    output_format,
    respond,
)
from services.catalog.domain import nbia
from services.catalog.domain.dicom_tags import DICOM_TAG_COLS
from services.catalog.domain.nbia import SERIES_COLS, SERIES_METADATA_COLS, SERIES_SIZE_COLS
from services.catalog.queries import nbia as queries
from services.catalog.queries.access import Visible, visible
from services.catalog.queries.nbia import Row
from services.catalog.schemas import SeriesDetail
from services.common.app import NotFound
from services.common.security import CurrentPrincipal

router = APIRouter()
SERIES_UID = "SeriesInstanceUID"


@nbia_get(
    router, "getSeries", "Collection", "PatientID", "StudyInstanceUID", "SeriesInstanceUID",
    "Modality", "BodyPartExamined", "Manufacturer", "ManufacturerModelName",
    columns=SERIES_COLS,
)  # fmt: skip
async def series_list(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row] | bytes:
    return await queries.series_(conn, vis, a)


@nbia_get(router, "getUpdatedSeries", "fromDate", columns=SERIES_COLS, dates=("fromDate",))
async def updated_series(
    conn: AsyncConnection, vis: Visible, a: dict[str, Any]
) -> list[Row] | bytes:
    """Series released strictly after midnight of ``fromDate`` (NBIA's default is
    01-01-1900)."""
    since = a.get("fromDate") or nbia.parse_nbia_date("01-01-1900")
    return await queries.series_(conn, vis, {"format": a["format"]}, released_after=since)


@nbia_get(router, "getSeriesSize", SERIES_UID, columns=SERIES_SIZE_COLS, required=(SERIES_UID,))
async def series_size(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    return await queries.series_size(conn, vis, a[SERIES_UID])


@nbia_get(
    router, "getSOPInstanceUIDs", SERIES_UID, columns=("SOPInstanceUID",), required=(SERIES_UID,)
)
async def sop_uids(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    return await queries.sop_instance_uids(conn, vis, a[SERIES_UID])


@nbia_get(router, "getDicomTags", "SeriesUID", columns=DICOM_TAG_COLS, required=("SeriesUID",))
async def dicom_tags(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    """The header of the series' first image."""
    return await queries.dicom_tags(conn, vis, a["SeriesUID"])


@router.post(f"{PREFIX}{V4}/getSeriesMetadata", response_class=Response, tags=["NBIA v4"])
async def series_metadata(
    request: Request, catalog: CatalogDep, principal: CurrentPrincipal
) -> Response:
    """Metadata of the listed series (form ``list``: comma-joined UIDs, or repeated);
    CSV unless ``format`` says otherwise. Series the caller may not see are left out."""
    form = await request.form()
    lists = [str(v) for v in form.getlist("list")] + request.query_params.getlist("list")
    uids = nbia.series_uid_list(lists)
    if not uids:
        return bad_request(nbia.missing_parameter("list"))
    try:
        fmt = output_format(
            str(form.get("format") or request.query_params.get("format") or ""), "csv"
        )
    except BadRequest as e:
        return bad_request(str(e))
    async with catalog.read() as conn:
        rows = await queries.series_metadata(conn, await visible(conn, principal), uids)
    return respond(rows, SERIES_METADATA_COLS, fmt, filename="SeriesMetaData.csv")


@router.get("/api/catalog/series/{uid}", response_model=SeriesDetail, tags=["catalog"])
async def get_series(
    uid: str, catalog: CatalogDep, principal: CurrentPrincipal, headers: bool = False
) -> dict[str, Any]:
    """One published series with its instances (object keys, sizes, SHA-256)."""
    async with catalog.read() as conn:
        vis = await visible(conn, principal)
        row = await queries.one_series(conn, vis, uid)
        if row is None:
            raise NotFound(
                f"series {uid} is not in the catalog, or you may not see it; "
                "check the UID or log in with an account that accepted its licence"
            )
        found = await queries.series_instances(conn, uid, headers=headers)
    coll = vis.info(row["collection"])
    return {
        **row,
        "licence": {"id": coll.licence_id, "name": coll.licence_name, "url": coll.licence_url},
        "instances": found,
    }
