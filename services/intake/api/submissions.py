"""Submissions: start one, ask what the archive already holds, and read its counts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.common.app import NotFound
from services.common.security import AuthenticatedPrincipal, forbid
from services.intake.api.deps import IntakeDep, primary_only
from services.intake.models import Collection
from services.intake.service import submissions
from services.intake.service.submissions import MAX_PRESENT

router = APIRouter(prefix="/api/intake", tags=["intake"])


class SubmissionStart(BaseModel):
    site: str = Field("", max_length=64)
    sent: int | None = Field(None, ge=0, description="how many files the submitter will send")


class SubmissionStarted(BaseModel):
    submission_id: str
    collection: str
    site: str


class Pair(BaseModel):
    sop_instance_uid: str = Field("", max_length=64)
    sha256: str = Field(min_length=64, max_length=64)


class PresentAsk(BaseModel):
    files: list[Pair] = Field(max_length=MAX_PRESENT)


class PresentOut(BaseModel):
    present: list[Pair]


class SubmissionCounts(BaseModel):
    submission_id: str
    collection: str
    site: str
    via: str
    sent: int | None = Field(description="files the submitter said it would send")
    files: int = Field(description="files the server got for this submission")
    received: int = Field(description="distinct instances (or held files) it recorded")
    awaiting_deid: int
    deidentified: int
    published: int
    held: dict[str, dict[str, int]] = Field(description="held now: stage → reason code → count")
    held_total: int
    complete: bool = Field(description="de-id has decided every instance received")


@router.post("/collections/{name}/submissions", status_code=201, response_model=SubmissionStarted)
async def start(
    name: str, body: SubmissionStart, intake: IntakeDep, principal: AuthenticatedPrincipal
) -> SubmissionStarted:
    """Start a submission that several requests (or a resumed run) add files to."""
    primary_only(intake)
    site = body.site
    if not site and len(principal.sites) == 1:
        site = next(iter(principal.sites))
    async with intake.uow() as uow:
        if await uow.session.get(Collection, name) is None:
            raise NotFound(
                f"no collection named {name}; create it with "
                f"`imarc collections create {name} --licence ID`"
            )
        if not principal.can_submit(name, site):
            raise forbid(f"submit to collection {name}" + (f" for site {site}" if site else ""))
        s = await submissions.open_submission(
            uow.session, collection=name, site=site, by=principal.subject, sent=body.sent
        )
    return SubmissionStarted(submission_id=s.id, collection=s.collection, site=s.site)


@router.post("/submissions/{submission_id}/present", response_model=PresentOut)
async def present(
    submission_id: str, body: PresentAsk, intake: IntakeDep, principal: AuthenticatedPrincipal
) -> PresentOut:
    """Which of these files (SOPInstanceUID and sha256) the archive already holds; they
    join this submission, so a resumed run need not send them again."""
    async with intake.uow() as uow:
        sub = await submissions.for_upload(uow.session, submission_id, None, principal)
        found = await submissions.present(
            uow.session, sub, [(f.sop_instance_uid, f.sha256) for f in body.files]
        )
    return PresentOut(present=[Pair(sop_instance_uid=u, sha256=h) for u, h in found])


@router.get("/submissions/{submission_id}", response_model=SubmissionCounts)
async def get(
    submission_id: str, intake: IntakeDep, principal: AuthenticatedPrincipal
) -> SubmissionCounts:
    """Counts of a submission: files sent and received, held (by stage and reason),
    de-identified and published."""
    async with intake.db.session() as s:
        sub = await submissions.visible(s, submission_id, principal)
        c = await submissions.counts(s, sub)
    return SubmissionCounts(
        submission_id=c.submission_id,
        collection=c.collection,
        site=c.site,
        via=c.via,
        sent=c.sent,
        files=c.files,
        received=c.received,
        awaiting_deid=c.awaiting_deid,
        deidentified=c.deidentified,
        published=c.published,
        held=c.held,
        held_total=c.held_total,
        complete=c.awaiting_deid == 0,
    )


class HeldMemberOut(BaseModel):
    instance_id: str
    filename: str
    stage: str
    code: str
    reason: str


@router.get("/submissions/{submission_id}/held", response_model=list[HeldMemberOut])
async def held(
    submission_id: str,
    intake: IntakeDep,
    principal: AuthenticatedPrincipal,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[HeldMemberOut]:
    """The submission's files held now (at intake or de-id), with reason code and text."""
    async with intake.db.session() as s:
        sub = await submissions.visible(s, submission_id, principal)
        rows = await submissions.held(s, sub, limit)
    return [HeldMemberOut(**vars(r)) for r in rows]
