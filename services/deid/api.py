"""HTTP API of deid: profiles, ID maps, map exports, holds and audits (prefix /api/deid)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import IntegrityError

from services.common.security import AuthenticatedPrincipal, Principal, forbid
from services.common.service import ServiceContext
from services.deid import domain, handlers
from services.deid.models import ProfileVersion
from services.deid.schemas import (
    AuditEntryOut,
    HeldInstance,
    IdMapLoaded,
    InstanceAudit,
    ProfileOut,
    ProfileUpdate,
    ReleaseOutcome,
)

MAX_ID_MAP_BYTES = 64 * 1024 * 1024
CSV_TYPES = ("text/csv", "text/plain", "application/csv", "application/vnd.ms-excel")


def _may_manage(principal: Principal, collection: str) -> None:
    if not principal.can_manage(collection):
        raise forbid(f"manage the de-identification of {collection}")


def _may_curate(principal: Principal, collection: str) -> None:
    if not principal.can_curate(collection):
        raise forbid(f"review held instances of {collection}")


def _profile_out(row: ProfileVersion) -> ProfileOut:
    body = row.body
    return ProfileOut(
        collection=row.collection,
        version=row.version,
        options=sorted(body.get("options", [])),
        date_shift_scope=body.get("date_shift_scope", "patient"),
        require_id_map=bool(body.get("require_id_map", False)),
        pixel_rules=list(body.get("pixel_rules", [])),
        blank_rectangles=list(body.get("blank_rectangles", [])),
        keep_tags=list(body.get("keep_tags", [])),
        digest=row.digest,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def router(ctx: ServiceContext) -> APIRouter:
    r = APIRouter(prefix="/api/deid", tags=["deid"])

    async def known(collection: str) -> None:
        if not await handlers.collection_exists(ctx.db, collection):
            raise HTTPException(
                404,
                f"collection {collection} is not known to deid; register it first "
                "(imarc collections create)",
            )

    @r.get("/collections/{collection}/profile", response_model=ProfileOut)
    async def get_profile(collection: str, principal: AuthenticatedPrincipal) -> ProfileOut:
        _may_manage(principal, collection)
        row = await handlers.get_profile(ctx.db, collection)
        if row is None:
            await known(collection)
            raise HTTPException(404, f"collection {collection} has no profile yet; retry shortly")
        return _profile_out(row)

    @r.put("/collections/{collection}/profile", response_model=ProfileOut)
    async def put_profile(
        collection: str, body: ProfileUpdate, principal: AuthenticatedPrincipal
    ) -> ProfileOut:
        _may_manage(principal, collection)
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        try:
            row = await handlers.update_profile(ctx.db, collection, changes, principal.subject)
            ctx.state.get("profiles", {}).pop(collection, None)
        except domain.ProfileError as e:
            raise HTTPException(400, str(e)) from e
        except IntegrityError as e:
            raise HTTPException(
                409, "the profile was changed by someone else meanwhile; read it and try again"
            ) from e
        if row is None:
            await known(collection)
            raise HTTPException(404, f"collection {collection} has no profile yet; retry shortly")
        return _profile_out(row)

    @r.get("/collections/{collection}/profile/versions", response_model=list[ProfileOut])
    async def profile_versions(
        collection: str, principal: AuthenticatedPrincipal
    ) -> list[ProfileOut]:
        _may_manage(principal, collection)
        rows = await handlers.profile_versions(ctx.db, collection)
        if not rows:
            await known(collection)
        return [_profile_out(row) for row in rows]

    @r.post(
        "/collections/{collection}/idmap",
        response_model=IdMapLoaded,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        },
    )
    async def upload_id_map(
        collection: str, request: Request, principal: AuthenticatedPrincipal
    ) -> IdMapLoaded:
        """Load ``id_old,id_new`` rows (original → new PatientID) into the collection's map."""
        _may_manage(principal, collection)
        await known(collection)
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
        try:
            rows = domain.parse_id_map(text)
            loaded = await handlers.load_id_map(ctx.db, collection, rows, principal.subject)
        except domain.IdMapError as e:
            raise HTTPException(400, str(e)) from e
        except IntegrityError as e:
            raise HTTPException(
                409, "the ID map was changed by someone else meanwhile; upload it again"
            ) from e
        return IdMapLoaded(loaded=loaded)

    async def export(collection: str, which: Literal["patients", "uids"]) -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            yield "id_old,id_new\r\n"
            async for page in handlers.map_pairs(ctx.db, collection, which):
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

    @r.get("/collections/{collection}/maps/patients.csv", response_class=StreamingResponse)
    async def patients_csv(collection: str, principal: AuthenticatedPrincipal) -> StreamingResponse:
        """Original PatientID → pseudonym of every patient de-identified so far."""
        _may_manage(principal, collection)
        await known(collection)
        return await export(collection, "patients")

    @r.get("/collections/{collection}/maps/uids.csv", response_class=StreamingResponse)
    async def uids_csv(collection: str, principal: AuthenticatedPrincipal) -> StreamingResponse:
        """Every UID the engine changed, original → new."""
        _may_manage(principal, collection)
        await known(collection)
        return await export(collection, "uids")

    @r.get("/collections/{collection}/held", response_model=list[HeldInstance])
    async def held(collection: str, principal: AuthenticatedPrincipal) -> list[HeldInstance]:
        _may_curate(principal, collection)
        await known(collection)
        return [
            HeldInstance(instance_id=h.instance_id, reason=h.reason, held_at=h.held_at)
            for h in await handlers.holds(ctx.db, collection)
        ]

    @r.post("/collections/{collection}/held/{instance_id}/release", response_model=ReleaseOutcome)
    async def release(
        collection: str, instance_id: str, principal: AuthenticatedPrincipal
    ) -> ReleaseOutcome:
        """Re-run a held instance; a pixel hold is released past the pixel screen."""
        _may_curate(principal, collection)
        outcome = await handlers.release(ctx, collection, instance_id, principal.subject)
        if outcome is None:
            raise HTTPException(
                404,
                f"instance {instance_id} is not held in {collection}; "
                "list the held instances to find it",
            )
        if outcome.outcome == "skipped":
            raise HTTPException(
                409, f"instance {instance_id} was released or replaced meanwhile; list again"
            )
        return ReleaseOutcome(
            instance_id=outcome.instance_id,
            outcome=outcome.outcome,
            reason=outcome.reason,
            profile_version=outcome.profile_version,
            object=outcome.object,
        )

    @r.get("/instances/{instance_id}/audit", response_model=InstanceAudit)
    async def audit(instance_id: str, principal: AuthenticatedPrincipal) -> InstanceAudit:
        row = await handlers.instance(ctx.db, instance_id)
        if row is None:
            raise HTTPException(
                404,
                f"instance {instance_id} has not been de-identified; "
                "it may be held (see the collection's held list)",
            )
        if not principal.can_curate(row.collection):
            raise forbid(f"read de-identification audits of {row.collection}")
        return InstanceAudit(
            instance_id=row.instance_id,
            collection=row.collection,
            profile_version=row.profile_version,
            profile_digest=row.profile_digest,
            deidentified_at=row.deidentified_at,
            released_by=row.released_by,
            entries=[AuditEntryOut(**e) for e in row.audit],
        )

    return r
