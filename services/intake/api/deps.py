"""The dependencies intake's routes name, and the checks they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query

from services.common.app import NotFound, Unavailable, provided
from services.common.security import Principal, forbid
from services.intake import queries
from services.intake.bootstrap import Intake
from services.intake.models import Collection
from services.intake.service import submissions

IntakeDep = Annotated[Intake, Depends(provided(Intake))]

REPLICA = "this site is a read replica; send submissions to the primary site"
MIRROR = "this site is a mirror of another site; send submissions to the site it mirrors"


def no_collection(name: str) -> NotFound:
    return NotFound(
        f"no collection named {name}; create it with `imarc collections create {name} --licence ID`"
    )


async def collection_or_404(intake: Intake, name: str) -> Collection:
    async with intake.db.session() as s:
        c = await queries.get_collection(s, name)
    if c is None:
        raise no_collection(name)
    return c


def primary_only(intake: Intake) -> None:
    """Submissions are taken only at the primary site (503 elsewhere, saying where to go)."""
    role = intake.settings.site_role
    if role != "primary":
        raise Unavailable(REPLICA if role == "replica" else MIRROR)


def submitter_site(principal: Principal, collection: str, site: str) -> str:
    """The site files come from: as asked, or the one site a token is for; refused unless
    the principal may submit to ``collection`` for it."""
    if not site and len(principal.sites) == 1:
        site = next(iter(principal.sites))  # a token for one site says where files come from
    if not principal.can_submit(collection, site):
        raise forbid(f"submit to collection {collection}" + (f" for site {site}" if site else ""))
    return site


def may_see(principal: Principal, c: Collection) -> bool:
    """A limited collection's record (name, licence, description) is shown only to those
    who may read it or submit to it."""
    return principal.can_read(c.name, c.access, c.licence_id) or principal.can_submit(c.name)


@dataclass(frozen=True)
class Submitting:
    """Where a submission's files come from, and the submission they join ("" for a new
    one)."""

    site: str
    submission: str


def _submitting(
    site: Annotated[str, Query(max_length=64, description="submitting site")] = "",
    submission: Annotated[
        str, Query(max_length=32, description="add the files to this submission")
    ] = "",
) -> Submitting:
    return Submitting(site, submission)


SubmittingDep = Annotated[Submitting, Depends(_submitting)]


async def admit(
    intake: Intake, principal: Principal, collection: str, asked: Submitting
) -> Submitting:
    """The checks every way in over HTTP makes before it reads a body: this site takes
    submissions, the collection exists, the principal may submit to it for the site (the
    one site of its token when none is named), and a submission joined is theirs."""
    primary_only(intake)
    await collection_or_404(intake, collection)
    site = submitter_site(principal, collection, asked.site)
    if asked.submission:
        async with intake.db.session() as s:
            await submissions.for_upload(s, asked.submission, collection, principal)
    return Submitting(site, asked.submission)
