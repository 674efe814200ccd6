"""HTTP routes: the NBIA-compatible search API (v4) and the catalog's JSON API for the CLI.

NBIA errors are plain-text 400 bodies (NBIA's wording, which tcia_utils logs as is); the
JSON API raises HTTPException with a sentence saying what to do next.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog import domain, queries
from services.catalog.domain import (
    COLLECTION_DESCRIPTION_COLS,
    DICOM_TAG_COLS,
    PATIENT_COLS,
    PATIENT_ID_COLS,
    SERIES_COLS,
    SERIES_METADATA_COLS,
    SERIES_SIZE_COLS,
    STUDY_COLS,
)
from services.catalog.queries import Row, Visible
from services.catalog.schemas import CollectionSummary, SeriesDetail
from services.common.security import CurrentPrincipal
from services.common.service import ServiceContext

V4 = "/nbia-api/services/v4"
Query = Callable[[AsyncConnection, Visible, dict[str, Any]], Awaitable[list[Row] | bytes]]


def _text(status: int, message: str) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=status)


def _respond(
    rows: Sequence[Row] | bytes, columns: Sequence[str], fmt: str, filename: str | None = None
) -> Response:
    if isinstance(rows, bytes):  # already rendered (getSeries as JSON)
        return Response(rows, media_type="application/json")
    out = domain.render(rows, columns, fmt, filename=filename)
    return Response(out.body, media_type=out.media_type, headers=out.headers)


def router(ctx: ServiceContext) -> APIRouter:
    r = APIRouter()
    engine = ctx.db.engine

    def nbia(
        name: str,
        *params: str,
        columns: Sequence[str],
        required: Sequence[str] = (),
        dates: Sequence[str] = (),
        accepts_format: bool = True,
    ) -> Callable[[Query], Query]:
        """Register ``GET /nbia-api/services/v4/<name>`` with NBIA's parameter rules:
        unknown names (case-sensitive) and missing required ones are a 400, dates are
        MM-DD-YYYY, ``format`` picks the output; empty values count as absent."""
        allowed = (*params, "format") if accepts_format else params

        def register(query: Query) -> Query:
            async def endpoint(request: Request, principal: CurrentPrincipal) -> Response:
                given = request.query_params
                if message := domain.unknown_parameter(given.keys(), allowed):
                    return _text(400, message)
                args: dict[str, Any] = {k: v.strip() for k, v in given.items() if v.strip()}
                for p in required:
                    if p not in args:
                        return _text(400, domain.missing_parameter(p))
                for p in dates:
                    if p in args:
                        if (when := domain.parse_nbia_date(args[p])) is None:
                            return _text(400, domain.bad_date(p))
                        args[p] = when
                fmt = args["format"] = str(args.get("format", "json")).lower()
                if fmt not in domain.FORMATS:
                    return _text(400, domain.bad_format(fmt))
                async with engine.connect() as conn:
                    vis = await queries.visible(conn, principal)
                    rows = await query(conn, vis, args)
                return _respond(rows, columns, fmt)

            r.add_api_route(
                f"{V4}/{name}", endpoint, methods=["GET"], name=f"nbia_{name}",
                response_class=Response, summary=f"NBIA v4 {name}", tags=["NBIA v4"],
            )  # fmt: skip
            return query

        return register

    # -- value lists ---------------------------------------------------------------------

    @nbia("getCollectionValues", columns=("Collection",))
    async def _collections(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
        return await queries.collection_values(conn, vis)

    @nbia("getModalityValues", "Collection", "BodyPartExamined", columns=("Modality",))
    async def _modalities(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
        return await queries.distinct_values(conn, vis, a, "modality", "Modality")

    @nbia("getBodyPartValues", "Collection", "Modality", columns=("BodyPartExamined",))
    async def _body_parts(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
        return await queries.distinct_values(conn, vis, a, "body_part_examined", "BodyPartExamined")

    @nbia(
        "getManufacturerValues", "Collection", "Modality", "BodyPartExamined",
        columns=("Manufacturer",),
    )  # fmt: skip
    async def _manufacturers(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
        return await queries.distinct_values(conn, vis, a, "manufacturer", "Manufacturer")

    # -- counts --------------------------------------------------------------------------

    @nbia("getCollectionValuesAndCounts", columns=("Collection", "Count", "Authorized"))
    async def _collection_counts(
        conn: AsyncConnection, vis: Visible, a: dict[str, Any]
    ) -> list[Row]:
        return await queries.collection_counts(conn, vis)

    @nbia(
        "getModalityValuesAndCounts", "Collection", "BodyPartExamined",
        columns=("Modality", "Count", "Authorized"), accepts_format=False,
    )  # fmt: skip
    async def _modality_counts(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
        return await queries.value_counts(conn, vis, a, "modality", "Modality")

    @nbia(
        "getBodyPartValuesAndCounts", "Collection", "Modality",
        columns=("BodyPart", "Count", "Authorized"),
    )  # fmt: skip
    async def _body_part_counts(
        conn: AsyncConnection, vis: Visible, a: dict[str, Any]
    ) -> list[Row]:
        return await queries.value_counts(
            conn, vis, a, "body_part_examined", "BodyPart", upper=True
        )

    @nbia(
        "getManufacturerValuesAndCounts", "Collection", "Modality", "BodyPartExamined",
        columns=("Manufacturer", "Count", "Authorized"),
    )  # fmt: skip
    async def _manufacturer_counts(
        conn: AsyncConnection, vis: Visible, a: dict[str, Any]
    ) -> list[Row]:
        return await queries.value_counts(conn, vis, a, "manufacturer", "Manufacturer")

    # -- patients and studies ------------------------------------------------------------

    @nbia("getPatient", "Collection", "PatientId", columns=PATIENT_COLS)
    async def _patients(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
        return await queries.patients_(conn, vis, a)

    @nbia("getPatientByCollectionAndModality", "Collection", "Modality", columns=PATIENT_ID_COLS)
    async def _patients_by_modality(
        conn: AsyncConnection, vis: Visible, a: dict[str, Any]
    ) -> list[Row]:
        return await queries.patient_ids_by_modality(conn, vis, a)

    @nbia(
        "NewPatientsInCollection", "Collection", "fromDate",
        columns=PATIENT_COLS, required=("Collection", "fromDate"), dates=("fromDate",),
    )  # fmt: skip
    async def _new_patients(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
        return await queries.patients_(conn, vis, a, released_since=a["fromDate"])

    @nbia("getPatientStudy", "Collection", "PatientID", "StudyInstanceUID", columns=STUDY_COLS)
    async def _studies(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
        return await queries.studies_(conn, vis, a)

    @nbia(
        "NewStudiesInPatientCollection", "Collection", "PatientID", "fromDate",
        columns=STUDY_COLS, required=("Collection", "fromDate"), dates=("fromDate",),
    )  # fmt: skip
    async def _new_studies(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
        return await queries.studies_(conn, vis, a, released_since=a["fromDate"])

    # -- series --------------------------------------------------------------------------

    @nbia(
        "getSeries", "Collection", "PatientID", "StudyInstanceUID", "SeriesInstanceUID",
        "Modality", "BodyPartExamined", "Manufacturer", "ManufacturerModelName",
        columns=SERIES_COLS,
    )  # fmt: skip
    async def _series(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row] | bytes:
        return await queries.series_(conn, vis, a)

    @nbia("getUpdatedSeries", "fromDate", columns=SERIES_COLS, dates=("fromDate",))
    async def _updated_series(
        conn: AsyncConnection, vis: Visible, a: dict[str, Any]
    ) -> list[Row] | bytes:
        # NBIA's default fromDate is 01-01-1900 and the comparison is strictly after it.
        since = a.get("fromDate") or domain.parse_nbia_date("01-01-1900")
        return await queries.series_(conn, vis, {"format": a["format"]}, released_after=since)

    @nbia(
        "getSeriesSize", "SeriesInstanceUID",
        columns=SERIES_SIZE_COLS, required=("SeriesInstanceUID",),
    )  # fmt: skip
    async def _series_size(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
        return await queries.series_size(conn, vis, a["SeriesInstanceUID"])

    @nbia(
        "getSOPInstanceUIDs", "SeriesInstanceUID",
        columns=("SOPInstanceUID",), required=("SeriesInstanceUID",),
    )  # fmt: skip
    async def _sop_uids(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
        return await queries.sop_instance_uids(conn, vis, a["SeriesInstanceUID"])

    @nbia("getDicomTags", "SeriesUID", columns=DICOM_TAG_COLS, required=("SeriesUID",))
    async def _dicom_tags(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
        return await queries.dicom_tags(conn, vis, a["SeriesUID"])

    @nbia("getCollectionDescriptions", "collectionName", columns=COLLECTION_DESCRIPTION_COLS)
    async def _descriptions(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
        return queries.collection_descriptions(vis, a)

    @r.post(f"{V4}/getSeriesMetadata", response_class=Response, tags=["NBIA v4"])
    async def get_series_metadata(request: Request, principal: CurrentPrincipal) -> Response:
        """Metadata of the listed series (form ``list``: comma-joined UIDs, or repeated);
        CSV unless ``format`` says otherwise. Series the caller may not see are left out."""
        form = await request.form()
        lists = [str(v) for v in form.getlist("list")] + request.query_params.getlist("list")
        uids = domain.series_uid_list(lists)
        if not uids:
            return _text(400, domain.missing_parameter("list"))
        fmt = str(form.get("format") or request.query_params.get("format") or "csv").lower()
        if fmt not in domain.FORMATS:
            return _text(400, domain.bad_format(fmt))
        async with engine.connect() as conn:
            vis = await queries.visible(conn, principal)
            rows = await queries.series_metadata(conn, vis, uids)
        return _respond(rows, SERIES_METADATA_COLS, fmt, filename="SeriesMetaData.csv")

    # -- the catalog's JSON API ------------------------------------------------------------

    @r.get("/api/catalog/collections", response_model=list[CollectionSummary], tags=["catalog"])
    async def list_collections(principal: CurrentPrincipal) -> list[dict[str, Any]]:
        """The collections the caller may see, with their licence and counts."""
        async with engine.connect() as conn:
            vis = await queries.visible(conn, principal)
            return await queries.collection_summaries(conn, vis)

    @r.get("/api/catalog/series/{uid}", response_model=SeriesDetail, tags=["catalog"])
    async def get_series(
        uid: str, principal: CurrentPrincipal, headers: bool = False
    ) -> dict[str, Any]:
        """One published series with its instances (object keys, sizes, SHA-256)."""
        async with engine.connect() as conn:
            vis = await queries.visible(conn, principal)
            row = await queries.one_series(conn, vis, uid)
            if row is None:
                raise HTTPException(
                    404,
                    f"series {uid} is not in the catalog, or you may not see it; "
                    "check the UID or log in with an account that accepted its licence",
                )
            found = await queries.series_instances(conn, uid, headers=headers)
        coll = vis.info(row["collection"])
        return {
            **row,
            "released_at": domain.utc(row["released_at"]),
            "licence": {"id": coll.licence_id, "name": coll.licence_name, "url": coll.licence_url},
            "instances": found,
        }

    return r
