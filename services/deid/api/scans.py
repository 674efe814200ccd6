"""The residual-PHI scan of a collection, run again (after a profile change)."""

from __future__ import annotations

from fastapi import APIRouter

from services.common.security import AuthenticatedPrincipal, forbid
from services.deid import service
from services.deid.api.deps import DeidDep
from services.deid.schemas import ScanOut

router = APIRouter(prefix="/api/deid/collections", tags=["deid"])


@router.post("/{collection}/scan", response_model=ScanOut)
async def scan(collection: str, deid: DeidDep, principal: AuthenticatedPrincipal) -> ScanOut:
    """Scan every de-identified instance of the collection against its original again
    and report the findings to curation (``imarc qc scan --collection NAME --run``)."""
    if not principal.can_curate(collection):
        raise forbid(f"scan {collection} for residual PHI")
    done = await service.rescan(deid, collection)
    return ScanOut(instances=done.instances, findings=done.findings, skipped=done.skipped)
