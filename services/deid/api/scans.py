"""The residual-PHI scan of a collection, run again (after a profile change), and its
progress."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, status

from services.common.app import NotFound
from services.common.security import AuthenticatedPrincipal, forbid
from services.deid import service
from services.deid.api.deps import DeidDep
from services.deid.models import ScanRun
from services.deid.schemas import ScanOut

router = APIRouter(prefix="/api/deid/collections", tags=["deid"])


def _out(run: ScanRun) -> ScanOut:
    state = "stalled" if service.stalled(run, datetime.now(UTC)) else run.state
    return ScanOut.model_validate(run, from_attributes=True).model_copy(update={"state": state})


@router.post("/{collection}/scan", response_model=ScanOut, status_code=status.HTTP_202_ACCEPTED)
async def start_scan(collection: str, deid: DeidDep, principal: AuthenticatedPrincipal) -> ScanOut:
    """Start scanning every de-identified instance of the collection against its original
    again, in the background; the findings reach curation as they are found. A scan
    already under way is answered instead of starting another. Follow it with
    ``GET .../scan`` (``imarc qc scan --collection NAME --run`` does both)."""
    if not principal.can_curate(collection):
        raise forbid(f"scan {collection} for residual PHI")
    return _out(await service.start_rescan(deid, collection, principal.subject))


@router.get("/{collection}/scan", response_model=ScanOut)
async def scan_progress(
    collection: str, deid: DeidDep, principal: AuthenticatedPrincipal
) -> ScanOut:
    """The newest scan of the collection: its state and how many instances it has done."""
    if not principal.can_curate(collection):
        raise forbid(f"see the residual-PHI scans of {collection}")
    run = await service.latest_run(deid, collection)
    if run is None:
        raise NotFound(
            f"{collection} has not been scanned again yet; start a scan with "
            f"POST /api/deid/collections/{collection}/scan (imarc qc scan --run)"
        )
    return _out(run)
