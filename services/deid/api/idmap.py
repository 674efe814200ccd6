"""A collection's ID map (upload) and its maps (original → new patient IDs and UIDs) as
CSV downloads."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from services.common.db import Database
from services.common.security import AuthenticatedPrincipal
from services.deid import queries, service
from services.deid.api.deps import DeidDep, may_manage
from services.deid.schemas import IdMapLoaded

router = APIRouter(prefix="/api/deid/collections", tags=["deid"])

MAX_ID_MAP_BYTES = 64 * 1024 * 1024
CSV_TYPES = ("text/csv", "text/plain", "application/csv", "application/vnd.ms-excel")


@router.post(
    "/{collection}/idmap",
    response_model=IdMapLoaded,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def upload_id_map(
    collection: str, request: Request, deid: DeidDep, principal: AuthenticatedPrincipal
) -> IdMapLoaded:
    """Load ``id_old,id_new`` rows (original → new PatientID) into the collection's map."""
    may_manage(principal, collection)
    await queries.known(deid.db, collection)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in CSV_TYPES:
        raise HTTPException(415, "send the ID map as text/csv with the header id_old,id_new")
    raw = await request.body()
    if len(raw) > MAX_ID_MAP_BYTES:
        raise HTTPException(413, "the ID map is larger than 64 MB; split it into parts")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HTTPException(400, "the ID map is not UTF-8 text; save the CSV as UTF-8") from e
    loaded = await service.load_id_map(deid.db, collection, text, principal.subject)
    return IdMapLoaded(loaded=loaded)


def _export(db: Database, collection: str, which: Literal["patients", "uids"]) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        yield "id_old,id_new\r\n"
        async for page in queries.map_pairs(db, collection, which):
            out = io.StringIO()
            csv.writer(out).writerows(page)
            yield out.getvalue()

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{collection}-{which}.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/{collection}/maps/patients.csv", response_class=StreamingResponse)
async def patients_csv(
    collection: str, deid: DeidDep, principal: AuthenticatedPrincipal
) -> StreamingResponse:
    """Original PatientID → pseudonym of every patient de-identified so far."""
    may_manage(principal, collection)
    await queries.known(deid.db, collection)
    return _export(deid.db, collection, "patients")


@router.get("/{collection}/maps/uids.csv", response_class=StreamingResponse)
async def uids_csv(
    collection: str, deid: DeidDep, principal: AuthenticatedPrincipal
) -> StreamingResponse:
    """Every UID the engine changed, original → new."""
    may_manage(principal, collection)
    await queries.known(deid.db, collection)
    return _export(deid.db, collection, "uids")
