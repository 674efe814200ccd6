"""NBIA's v1 search API (and its unversioned count endpoints): the same queries as v4,
in v1's columns, dates and parameter conventions (see domain/nbia_v1.py). v1 ignores
parameters it does not know."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.api.deps import CatalogDep
from services.catalog.api.nbia import (
    PREFIX,
    V1,
    BadRequest,
    bad_request,
    nbia_get,
    parameters,
    respond,
)
from services.catalog.domain import nbia_v1
from services.catalog.domain.nbia import SERIES_SIZE_COLS
from services.catalog.queries import nbia as queries
from services.catalog.queries import search
from services.catalog.queries.access import Visible, visible
from services.catalog.queries.nbia import Row
from services.common.security import CurrentPrincipal

router = APIRouter()
V1_DAY = "%Y/%m/%d"  # the Date of NewPatientsInCollection / NewStudiesInPatientCollection
UPDATED_SINCE = "%d/%m/%Y"  # getUpdatedSeries' fromDate
SERIES_UID = "SeriesInstanceUID"
COUNT_COLS = ("Count", "Authorized")
Args = dict[str, Any]


@nbia_get(router, "getCollectionValues", version=V1, columns=("Collection",))
async def collections(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.collection_values(conn, vis)


@nbia_get(router, "getModalityValues", version=V1, columns=("Modality",))
async def modalities(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.distinct_values(conn, vis, a, "modality", "Modality")


@nbia_get(router, "getBodyPartValues", version=V1, columns=("BodyPartExamined",))
async def body_parts(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.distinct_values(conn, vis, a, "body_part_examined", "BodyPartExamined")


@nbia_get(router, "getManufacturerValues", version=V1, columns=("Manufacturer",))
async def manufacturers(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.distinct_values(conn, vis, a, "manufacturer", "Manufacturer")


@nbia_get(router, "getPatient", version=V1, columns=nbia_v1.PATIENT_V1_COLS)
async def patients(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.patients_(conn, vis, a, row=nbia_v1.patient_row)


@nbia_get(router, "getPatientByCollectionAndModality", version=V1, columns=("PatientId",))
async def patients_by_modality(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.patient_ids_by_modality(conn, vis, a)


@nbia_get(
    router, "NewPatientsInCollection", version=V1, columns=nbia_v1.PATIENT_V1_COLS,
    required=("Collection", "Date"), dates=("Date",), date_format=V1_DAY,
)  # fmt: skip
async def new_patients(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.patients_(conn, vis, a, a["Date"], row=nbia_v1.patient_row)


@nbia_get(router, "getPatientStudy", version=V1, columns=nbia_v1.STUDY_V1_COLS)
async def studies(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.studies_(conn, vis, a, row=nbia_v1.study_row)


@nbia_get(
    router, "NewStudiesInPatientCollection", version=V1, columns=nbia_v1.STUDY_V1_COLS,
    required=("Collection", "Date"), dates=("Date",), date_format=V1_DAY,
)  # fmt: skip
async def new_studies(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.studies_(conn, vis, a, a["Date"], row=nbia_v1.study_row)


@nbia_get(router, "getSeries", version=V1, columns=nbia_v1.SERIES_COLS)
async def series_list(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row] | bytes:
    return await queries.series_(conn, vis, a, row=nbia_v1.series_row)


@nbia_get(
    router, "getUpdatedSeries", version=V1, columns=nbia_v1.UPDATED_SERIES_COLS,
    required=("fromDate",), dates=("fromDate",), date_format=UPDATED_SINCE,
)  # fmt: skip
async def updated_series(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row] | bytes:
    args = {"format": a["format"]}
    return await queries.series_(
        conn, vis, args, released_after=a["fromDate"], row=nbia_v1.updated_series_row
    )


@nbia_get(router, "getSeriesSize", version=V1, columns=SERIES_SIZE_COLS, required=(SERIES_UID,))
async def series_size(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.series_size(conn, vis, a[SERIES_UID])


@nbia_get(
    router, "getSOPInstanceUIDs", version=V1, columns=("SOPInstanceUID",), required=(SERIES_UID,)
)
async def sop_uids(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.sop_instance_uids(conn, vis, a[SERIES_UID])


@router.get(f"{PREFIX}{V1}/getSeriesMetaData", response_class=Response, tags=["NBIA v1"])
async def series_metadata(
    request: Request, catalog: CatalogDep, principal: CurrentPrincipal
) -> Response:
    """One series' metadata under NBIA's old spaced names; 204 when it is not there."""
    try:
        args = parameters(request, None, required=(SERIES_UID,))
    except BadRequest as e:
        return bad_request(str(e))
    async with catalog.read() as conn:
        vis = await visible(conn, principal)
        row = await search.series_with_header(conn, vis, args[SERIES_UID])
    if row is None:
        return Response(status_code=204)
    found = nbia_v1.series_metadata_row(row, vis.info(row["collection"]), row["header"])
    return respond([found], nbia_v1.SERIES_METADATA_COLS, args["format"])


# -- the count endpoints at NBIA's unversioned paths -----------------------------------------


@nbia_get(router, "getCollectionValuesAndCounts", version="", columns=("Collection", *COUNT_COLS))
async def collection_counts(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.collection_counts(conn, vis)


@nbia_get(router, "getModalityValuesAndCounts", version="", columns=("Modality", *COUNT_COLS))
async def modality_counts(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.value_counts(conn, vis, a, "modality", "Modality")


@nbia_get(router, "getBodyPartValuesAndCounts", version="", columns=("BodyPart", *COUNT_COLS))
async def body_part_counts(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.value_counts(conn, vis, a, "body_part_examined", "BodyPart", upper=True)


@nbia_get(
    router, "getManufacturerValuesAndCounts", version="", columns=("Manufacturer", *COUNT_COLS)
)
async def manufacturer_counts(conn: AsyncConnection, vis: Visible, a: Args) -> list[Row]:
    return await queries.value_counts(conn, vis, a, "manufacturer", "Manufacturer")
