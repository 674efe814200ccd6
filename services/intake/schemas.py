"""Shapes of the intake HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from services.common.contracts import collection_name_problem
from services.common.events import Licence
from services.intake import domain
from services.intake.models import Collection, HeldInstance

Access = Literal["public", "limited"]


class CollectionCreate(BaseModel):
    name: str = Field(description="case-sensitive identifier, e.g. Demo-CT")
    licence: str = Field(
        description="licence id (case-sensitive): one the auth service lists at "
        f"/api/auth/licences, or a built-in one ({', '.join(domain.LICENCES)})"
    )
    access: Access = "public"
    description: str = Field("", max_length=20_000)
    doi: str = Field("", max_length=200)
    require_id_map: bool = False
    citation: str = Field("", max_length=5_000, description="how to cite the collection")
    data_usage_policy: str = Field(
        "", max_length=500, description="URL of the data usage policy every copy passes on"
    )
    face_reconstructable: bool = Field(
        False,
        description="head/neck CT or MR from which a face could be reconstructed; such a "
        "collection is always limited access (TCIA's policy)",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if problem := collection_name_problem(v):
            raise ValueError(problem)
        return v


class CollectionPatch(BaseModel):
    licence: str | None = None
    access: Access | None = None
    description: str | None = Field(None, max_length=20_000)
    doi: str | None = Field(None, max_length=200)
    require_id_map: bool | None = None
    citation: str | None = Field(None, max_length=5_000)
    data_usage_policy: str | None = Field(None, max_length=500)
    face_reconstructable: bool | None = None


class CollectionOut(BaseModel):
    name: str
    licence: Licence
    access: Access
    description: str
    doi: str
    require_id_map: bool
    citation: str = ""
    data_usage_policy: str = ""
    face_reconstructable: bool = False
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, c: Collection) -> CollectionOut:
        return cls(
            name=c.name,
            licence=Licence(id=c.licence_id, name=c.licence_name, url=c.licence_url),
            access=c.access,  # type: ignore[arg-type]
            description=c.description,
            doi=c.doi,
            require_id_map=c.require_id_map,
            citation=c.citation,
            data_usage_policy=c.data_usage_policy,
            face_reconstructable=c.face_reconstructable,
            created_at=c.created_at,
            updated_at=c.updated_at,
        )


class AcceptedFile(BaseModel):
    filename: str
    instance_id: str
    sop_instance_uid: str


class HeldFile(BaseModel):
    filename: str
    reason: str


class SubmissionOut(BaseModel):
    submission_id: str
    collection: str
    site: str
    accepted: list[AcceptedFile]
    held: list[HeldFile]
    accepted_count: int
    held_count: int


class HeldInstanceOut(BaseModel):
    id: str
    filename: str
    reason: str
    received_at: datetime
    site: str
    submission_id: str
    size: int
    sha256: str

    @classmethod
    def of(cls, h: HeldInstance) -> HeldInstanceOut:
        return cls(
            id=h.id,
            filename=h.filename,
            reason=h.reason,
            received_at=h.received_at,
            site=h.site,
            submission_id=h.submission_id,
            size=h.size,
            sha256=h.sha256,
        )


class CountsOut(BaseModel):
    received: int = Field(description="distinct instances in quarantine")
    held: int = Field(description="files held at intake")
