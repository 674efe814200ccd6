"""Sites that send by DICOM: their calling AE titles, per collection."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.common.security import AuthenticatedPrincipal, forbid
from services.intake.api.deps import IntakeDep
from services.intake.models import DicomSite
from services.intake.service import sites

router = APIRouter(prefix="/api/intake", tags=["intake"])


class SiteAdd(BaseModel):
    site: str = Field(min_length=1, max_length=64)
    collection: str = Field(min_length=1, max_length=64)
    ae_titles: list[str] = Field(min_length=1, max_length=32)


class SiteOut(BaseModel):
    site: str
    collection: str
    ae_title: str
    added_by: str
    added_at: datetime

    @classmethod
    def of(cls, r: DicomSite) -> SiteOut:
        return cls(
            site=r.site,
            collection=r.collection,
            ae_title=r.ae_title,
            added_by=r.added_by,
            added_at=r.added_at,
        )


class Listener(BaseModel):
    ae_title: str
    port: int = Field(description="0 when this process runs no DICOM listener")
    sites: list[SiteOut]


@router.post("/sites", status_code=201, response_model=list[SiteOut])
async def add(body: SiteAdd, intake: IntakeDep, principal: AuthenticatedPrincipal) -> list[SiteOut]:
    """Let a site send to a collection by DICOM from these calling AE titles."""
    if not principal.can_manage(body.collection):
        raise forbid(f"register sites for {body.collection}")
    async with intake.uow() as uow:
        rows = await sites.add(
            uow.session, body.site, body.collection, body.ae_titles, principal.subject
        )
    return [SiteOut.of(r) for r in rows]


@router.get("/sites", response_model=Listener)
async def listing(intake: IntakeDep, principal: AuthenticatedPrincipal) -> Listener:
    """The DICOM listener and the sites registered with it."""
    if not principal.can_curate():
        raise forbid("list the DICOM sites")
    async with intake.db.session() as s:
        rows = await sites.listing(s)
    return Listener(
        ae_title=intake.settings.dicom_ae_title,
        port=intake.dicom_port,
        sites=[SiteOut.of(r) for r in rows],
    )
