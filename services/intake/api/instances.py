"""A collection's instances at intake: submit files, the files held at intake, counts."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.common.app import Unavailable
from services.common.bounds import Limits
from services.common.contracts import MAX_OFFSET
from services.common.security import AuthenticatedPrincipal, forbid
from services.intake import domain, queries
from services.intake.api.deps import IntakeDep, SubmittingDep, admit, collection_or_404
from services.intake.api.uploads import SUBMIT_BODY, uploads
from services.intake.schemas import (
    AcceptedFile,
    CountsOut,
    HeldFile,
    HeldInstanceOut,
    SubmissionOut,
)
from services.intake.service import receiving

router = APIRouter(prefix="/api/intake", tags=["intake"])


@router.post(
    "/collections/{name}/instances", response_model=SubmissionOut, openapi_extra=SUBMIT_BODY
)
async def submit(
    name: str,
    request: Request,
    intake: IntakeDep,
    principal: AuthenticatedPrincipal,
    asked: SubmittingDep,
) -> SubmissionOut:
    """Submit DICOM files: each is accepted into quarantine or held with its reason."""
    to = await admit(intake, principal, name, asked)
    async with AsyncExitStack() as stack:
        files = await uploads(request, stack, Limits.of(intake.settings))
        try:
            result = await receiving.receive(
                intake.ctx, name, to.site, principal.subject, files, to.submission or None
            )
        except receiving.StoreUnavailable:
            raise Unavailable(
                "the object store did not take the files; nothing was recorded, "
                "so send the submission again"
            ) from None
    accepted: list[AcceptedFile] = []
    held: list[HeldFile] = []
    for f in result.files:
        if isinstance(f.verdict, domain.Accepted):
            accepted.append(
                AcceptedFile(
                    filename=f.filename,
                    instance_id=f.instance_id,
                    sop_instance_uid=f.verdict.sop_instance_uid,
                )
            )
        else:
            held.append(HeldFile(filename=f.filename, reason=f.verdict.reason))
    return SubmissionOut(
        submission_id=result.submission_id,
        collection=result.collection,
        site=result.site,
        accepted=accepted,
        held=held,
        accepted_count=len(accepted),
        held_count=len(held),
    )


@router.get("/collections/{name}/held", response_model=list[HeldInstanceOut])
async def held(
    name: str,
    intake: IntakeDep,
    principal: AuthenticatedPrincipal,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[HeldInstanceOut]:
    """Files held at intake, oldest first."""
    await collection_or_404(intake, name)
    if not principal.can_curate(name):
        raise forbid(f"see the held files of {name}")
    async with intake.db.session() as s:
        rows = await queries.held_files(s, name, limit=limit, offset=offset)
    return [HeldInstanceOut.of(h) for h in rows]


@router.get("/collections/{name}/counts", response_model=CountsOut)
async def counts(name: str, intake: IntakeDep, principal: AuthenticatedPrincipal) -> CountsOut:
    await collection_or_404(intake, name)
    if not (principal.can_curate(name) or principal.can_submit(name)):
        raise forbid(f"see the counts of {name}")
    async with intake.db.session() as s:
        received, held = await queries.counts(s, name)
    return CountsOut(received=received, held=held)
