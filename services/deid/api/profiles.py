"""A collection's de-identification profile: read it, change it (a new version), list
its versions."""

from __future__ import annotations

from fastapi import APIRouter

from services.common.security import AuthenticatedPrincipal
from services.deid import queries, service
from services.deid.api.deps import DeidDep, may_manage
from services.deid.models import ProfileVersion
from services.deid.schemas import ProfileOut, ProfileUpdate

router = APIRouter(prefix="/api/deid/collections", tags=["deid"])


def profile_out(row: ProfileVersion) -> ProfileOut:
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
        defacing_modalities=list(body.get("defacing_modalities", [])),
        digest=row.digest,
        created_at=row.created_at,
        created_by=row.created_by,
    )


@router.get("/{collection}/profile", response_model=ProfileOut)
async def get_profile(
    collection: str, deid: DeidDep, principal: AuthenticatedPrincipal
) -> ProfileOut:
    may_manage(principal, collection)
    return profile_out(await queries.profile(deid.db, collection))


@router.put("/{collection}/profile", response_model=ProfileOut)
async def put_profile(
    collection: str, body: ProfileUpdate, deid: DeidDep, principal: AuthenticatedPrincipal
) -> ProfileOut:
    may_manage(principal, collection)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return profile_out(await service.update_profile(deid, collection, changes, principal.subject))


@router.get("/{collection}/profile/versions", response_model=list[ProfileOut])
async def profile_versions(
    collection: str, deid: DeidDep, principal: AuthenticatedPrincipal
) -> list[ProfileOut]:
    may_manage(principal, collection)
    return [profile_out(row) for row in await queries.profile_versions(deid.db, collection)]
