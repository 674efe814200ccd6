"""Instances held in quarantine: the list with reasons, and a curator's release."""

from __future__ import annotations

from fastapi import APIRouter

from services.common.app import Conflict, NotFound
from services.common.security import AuthenticatedPrincipal
from services.deid import queries, service
from services.deid.api.deps import DeidDep, may_curate
from services.deid.schemas import HeldInstance, ReleaseOutcome
from services.deid.service import Outcome

router = APIRouter(prefix="/api/deid/collections", tags=["deid"])


@router.get("/{collection}/held", response_model=list[HeldInstance])
async def held(
    collection: str, deid: DeidDep, principal: AuthenticatedPrincipal
) -> list[HeldInstance]:
    may_curate(principal, collection)
    return [
        HeldInstance(
            instance_id=h.instance_id,
            reason=h.reason,
            code=h.kind,
            held_at=h.held_at,
            filename=str(h.received.get("filename") or ""),
            text_boxes=h.text_boxes,  # type: ignore[arg-type]
        )
        for h in await queries.holds(deid.db, collection)
    ]


@router.post("/{collection}/held/{instance_id}/release", response_model=ReleaseOutcome)
async def release(
    collection: str, instance_id: str, deid: DeidDep, principal: AuthenticatedPrincipal
) -> ReleaseOutcome:
    """Re-run a held instance; a pixel hold is released past the pixel screen."""
    may_curate(principal, collection)
    outcome = await service.release(deid, collection, instance_id, principal.subject)
    if outcome is None:
        raise NotFound(
            f"instance {instance_id} is not held in {collection}; "
            "list the held instances to find it"
        )
    return released(outcome)


def released(outcome: Outcome) -> ReleaseOutcome:
    if outcome.outcome == "skipped":
        raise Conflict(
            f"instance {outcome.instance_id} was released or replaced meanwhile; list again"
        )
    return ReleaseOutcome(
        instance_id=outcome.instance_id,
        outcome=outcome.outcome,
        reason=outcome.reason,
        profile_version=outcome.profile_version,
        object=outcome.object,
    )
