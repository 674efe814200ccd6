"""A de-identified instance's audit: what was done to which attribute, never a value."""

from __future__ import annotations

from fastapi import APIRouter

from services.common.app import NotFound
from services.common.security import AuthenticatedPrincipal
from services.deid import queries
from services.deid.api.deps import DeidDep
from services.deid.schemas import AuditEntryOut, InstanceAudit

router = APIRouter(prefix="/api/deid/instances", tags=["deid"])


@router.get("/{instance_id}/audit", response_model=InstanceAudit)
async def audit(
    instance_id: str, deid: DeidDep, principal: AuthenticatedPrincipal
) -> InstanceAudit:
    row = await queries.instance(deid.db, instance_id)
    if row is None or not principal.can_curate(row.collection):
        # the same answer whether the instance is unknown or of a collection the caller
        # may not curate: an audit never tells who is not allowed that an instance exists
        raise NotFound(
            f"instance {instance_id} is not among the de-identified instances you can "
            "curate; check the id and your role (a held instance has no audit yet: see "
            "the collection's held list)"
        )
    return InstanceAudit(
        instance_id=row.instance_id,
        collection=row.collection,
        profile_version=row.profile_version,
        profile_digest=row.profile_digest,
        deidentified_at=row.deidentified_at,
        released_by=row.released_by,
        entries=[AuditEntryOut(**e) for e in row.audit],
    )
