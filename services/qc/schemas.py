"""HTTP shapes of the qc API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from services.qc.domain import ReviewState, parse_review_state


class CollectionStatus(BaseModel):
    collection: str
    received: int = Field(description="distinct instances received")
    held: int = Field(description="instances currently held (intake or deid)")
    deidentified: int = Field(description="instances currently de-identified, incl. published")
    awaiting_review: int = Field(description="de-identified instances not yet published")
    published: int = Field(description="instances published")


class SeriesOut(BaseModel):
    series_instance_uid: str
    collection: str
    study_instance_uid: str
    patient_id: str = Field(description="the patient pseudonym")
    modality: str
    review_state: ReviewState
    instances: int = Field(description="de-identified instances in curation")
    awaiting_review: int
    published: int
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    published_at: datetime | None = None


class ReviewIn(BaseModel):
    state: ReviewState = Field(
        description="Not Reviewed, Visible (approved), Not Visible (rejected) or To Be Deleted"
    )

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, v: object) -> ReviewState:
        return parse_review_state(str(v))


class PublishIn(BaseModel):
    series: list[str] = Field(
        default_factory=list,
        description="series to publish; empty means every series with instances awaiting review",
    )


class PublishOut(BaseModel):
    published: list[str]
    instances: int


class WithdrawIn(BaseModel):
    reason: str = ""


class WithdrawOut(BaseModel):
    withdrawn: str
    deleted: int = Field(description="public objects deleted")
