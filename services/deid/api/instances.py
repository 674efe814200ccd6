"""A de-identified instance's audit: what was done to which attribute, never a value."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from services.common.security import AuthenticatedPrincipal, forbid
from services.deid import queries
from services.deid.api.deps import DeidDep
from services.deid.schemas import AuditEntryOut, InstanceAudit

router = APIRouter(prefix="/api/deid/instances", tags=["deid"])


@router.get("/{instance_id}/audit", response_model=InstanceAudit)
async def audit(
    instance_id: str, deid: DeidDep, principal: AuthenticatedPrincipal
) -> InstanceAudit:
    row = await queries.instance(deid.db, instance_id)
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
