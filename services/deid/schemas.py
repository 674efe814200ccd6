"""HTTP shapes of the deid API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.common.events import ObjectRef


class PixelRuleIn(BaseModel):
    """Hold instances of a device for pixel review (empty fields match anything)."""

    model_config = ConfigDict(extra="forbid")

    manufacturer: str = ""
    model: str = ""
    modality: str = ""
    reason: str = "device known to burn in annotations"


class BlankRuleIn(BaseModel):
    """Blank rectangles (x, y, width, height) in instances of a device and image size."""

    model_config = ConfigDict(extra="forbid")

    rectangles: list[tuple[int, int, int, int]] = Field(min_length=1)
    manufacturer: str = ""
    model: str = ""
    rows: int | None = None
    columns: int | None = None


class ProfileOut(BaseModel):
    collection: str
    version: int
    options: list[str]
    date_shift_scope: Literal["patient", "collection"]
    require_id_map: bool
    pixel_rules: list[dict[str, Any]]
    blank_rectangles: list[dict[str, Any]]
    keep_tags: list[str]
    #: modalities a defacing step covers: their faces are not held for review
    defacing_modalities: list[str] = Field(default_factory=list)
    digest: str
    created_at: datetime | None = None
    created_by: str | None = None


class ProfileUpdate(BaseModel):
    """A partial update: fields left out keep their current value."""

    model_config = ConfigDict(extra="forbid")

    options: list[str] | None = None
    date_shift_scope: Literal["patient", "collection"] | None = None
    require_id_map: bool | None = None
    pixel_rules: list[PixelRuleIn] | None = None
    blank_rectangles: list[BlankRuleIn] | None = None
    keep_tags: list[str] | None = None
    defacing_modalities: list[str] | None = None


class IdMapLoaded(BaseModel):
    loaded: int


class TextBox(BaseModel):
    """Where text is burned into a frame, in its pixel coordinates (never the text)."""

    left: int
    top: int
    width: int
    height: int
    confidence: float = 0.0


class HeldInstance(BaseModel):
    instance_id: str
    #: what is wrong and what to do, as a sentence
    reason: str
    #: a fixed code for the reason: burned_in_phi, recognizable_features,
    #: study_two_patients, no_id_map_entry, quarantine_object, unreadable, deid_failed
    code: str = ""
    held_at: datetime
    filename: str = Field("", description="the file name as submitted")
    text_boxes: list[TextBox] | None = Field(
        None,
        description="pixel holds: boxes of burned-in text OCR found in the first frame "
        "(null until looked at)",
    )


class Rectangle(BaseModel):
    left: int = Field(ge=0)
    top: int = Field(ge=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class BlankIn(BaseModel):
    """Rectangles to blank in every frame before the held instance is de-identified."""

    rectangles: list[Rectangle] = Field(min_length=1, max_length=256)


class ReleaseOutcome(BaseModel):
    instance_id: str
    outcome: Literal["deidentified", "held"]
    reason: str | None = None
    profile_version: int | None = None
    object: ObjectRef | None = None


class AuditEntryOut(BaseModel):
    path: str
    keyword: str
    action: str


class InstanceAudit(BaseModel):
    instance_id: str
    collection: str
    profile_version: int
    profile_digest: str
    deidentified_at: datetime
    released_by: str | None = None
    entries: list[AuditEntryOut]


class ScanOut(BaseModel):
    """A scan of a collection again for residual PHI and how far it has come (the
    findings themselves are qc's to show: ``GET /api/qc/collections/{c}/findings``)."""

    id: str
    collection: str
    #: running, done, failed, or stalled (its process ended before it finished; start it
    #: again)
    state: Literal["running", "done", "failed", "stalled"]
    requested_by: str
    #: de-identified instances of the collection when the scan started
    total: int
    #: instances scanned so far, and findings among them
    scanned: int
    findings: int
    #: instances whose original or curated object is gone, or was never recorded
    skipped: int
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
