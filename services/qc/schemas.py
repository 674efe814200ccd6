"""HTTP shapes of the qc API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from services.qc.domain import ReviewState, parse_review_state
from services.qc.inventory import Key, keyword_of_path


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


class PublishRequest(PublishIn):
    override_findings: bool = Field(
        default=False,
        description="publish series with residual-PHI findings too (managers; audited)",
    )
    why: str = Field(default="", description="the reason for an override, kept in the audit")


class ReviewWithComment(ReviewIn):
    comment: str = Field("", max_length=2000)


class BulkReviewIn(BaseModel):
    state: ReviewState
    comment: str = Field("", max_length=2000)
    only_states: list[ReviewState] = Field(
        default_factory=list, description="select series in these review states (any if empty)"
    )
    modality: str = ""
    flagged: bool | None = Field(None, description="with (true) or without (false) findings")
    series: list[str] = Field(default_factory=list, description="these series only")

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, v: object) -> ReviewState:
        return parse_review_state(str(v))

    @field_validator("only_states", mode="before")
    @classmethod
    def _states(cls, v: object) -> list[ReviewState]:
        items = v if isinstance(v, list | tuple) else [] if v is None else [v]
        return [parse_review_state(str(x)) for x in items]


class BulkReviewOut(BaseModel):
    state: ReviewState
    series: list[str]


class ApproveIn(BaseModel):
    series: list[str] = Field(default_factory=list, description="empty: every series")


class ApproveOut(BaseModel):
    approved: list[str]


class SettingsIn(BaseModel):
    status: str | None = Field(None, description="active, inactive or complete")
    priority: int | None = Field(None, ge=-1000, le=1000)
    submitter_approval: bool | None = None


class SettingsOut(BaseModel):
    collection: str
    status: str
    priority: int
    submitter_approval: bool


class PublicCounts(BaseModel):
    patients: int
    studies: int
    series: int
    instances: int


class PublicCheck(BaseModel):
    """Whether the public catalog holds exactly what curation published."""

    state: Literal["match", "pending", "mismatch"] = Field(
        description="match: every published series is indexed as published; pending: the "
        "catalog has not reported some publications yet; mismatch: some differ"
    )
    pending_series: int
    mismatched_series: list[str] = Field(
        description="de-identified SeriesInstanceUIDs whose public copy differs (first 20)"
    )


class Glance(BaseModel):
    collection: str
    status: str
    priority: int
    submitter_approval: bool
    received: int
    held: int
    deidentified: int
    awaiting_review: int
    published: int
    held_by_reason: dict[str, int]
    flagged_series: int
    approved_series: int
    published_counts: PublicCounts = Field(description="what curation published")
    public: PublicCounts = Field(description="what the public catalog reports it holds of it")
    public_check: PublicCheck
    face_suggestion: str | None = Field(
        None,
        description="why the collection's series look like head or neck imaging a face "
        "could be rebuilt from, when the collection is not marked face_reconstructable",
    )


class InventoryRow(BaseModel):
    device: str
    section: str
    path: str
    element: str = Field(description="the path in keywords")
    vr: str
    creator: str = ""
    value: str
    count: int


def inventory_rows(counts: Mapping[Key, int]) -> list[InventoryRow]:
    """An inventory's counts as rows, sorted by device, section, path and value."""
    return [
        InventoryRow(
            device=k[0],
            section=k[1],
            path=k[2],
            element=keyword_of_path(k[2]),
            vr=k[3],
            creator=k[4],
            value=k[5],
            count=n,
        )
        for k, n in sorted(counts.items())
    ]


class InventoryChange(BaseModel):
    device: str
    section: str
    path: str
    vr: str
    creator: str = ""
    value: str
    before: int
    after: int


class FindingOut(BaseModel):
    series_instance_uid: str
    sop_instance_uid: str
    path: str
    kind: str


class HistoryOut(BaseModel):
    state: str
    by: str
    at: datetime
    comment: str


class InstanceOut(BaseModel):
    instance_id: str
    sop_instance_uid: str
    instance_number: int | None
    frames: int
    findings: int


class SeriesDetail(SeriesOut):
    history: list[HistoryOut]
    findings: list[FindingOut]
    slices: list[InstanceOut]


class HeaderElement(BaseModel):
    tag: str
    keyword: str
    vr: str
    value: str
    depth: int


class TextBoxOut(BaseModel):
    left: int
    top: int
    width: int
    height: int
    confidence: float


class OcrOut(BaseModel):
    instance_id: str
    frame: int
    boxes: list[TextBoxOut]


class AuditOut(BaseModel):
    action: str
    by: str
    at: datetime
    why: str
    subject: str
