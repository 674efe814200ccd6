"""The event envelope (CloudEvents 1.0 attribute names) and the typed event payloads.

Event payloads are a published API: add fields with defaults; a breaking change is a
new type emitted beside the old one. Golden samples in tests/contract guard the shapes.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

P = TypeVar("P", bound="Payload")


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """A CloudEvents 1.0 envelope in structured JSON mode."""

    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    subject: str | None = None
    time: datetime = Field(default_factory=_now)
    datacontenttype: str = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)

    def payload(self, model: builtins.type[P]) -> P:
        if self.type != model.TYPE:
            raise ValueError(f"event {self.id} is {self.type}, not {model.TYPE}")
        return model.model_validate(self.data)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, body: bytes | str) -> Event:
        return cls.model_validate_json(body)


class Payload(BaseModel):
    """Base of every typed event payload."""

    TYPE: ClassVar[str]

    def event(self, source: str, subject: str | None = None) -> Event:
        return Event(
            source=source, type=self.TYPE, subject=subject, data=self.model_dump(mode="json")
        )


class ObjectRef(BaseModel):
    zone: Literal["quarantine", "curation", "public"]
    key: str
    size: int
    sha256: str


class Licence(BaseModel):
    id: str
    name: str = ""
    url: str = ""


class CollectionUpdated(Payload):
    TYPE: ClassVar[str] = "org.imarc.collection.updated"

    name: str
    licence: Licence
    access: Literal["public", "limited"] = "public"
    description: str = ""
    doi: str = ""
    require_id_map: bool = False
    #: how to cite the collection (downloads carry it in CITATION, with the DOI)
    citation: str = ""
    #: the data usage policy every copy must pass on (a URL)
    data_usage_policy: str = ""
    #: head/neck CT or MR that could be reconstructed into a face: always limited access
    face_reconstructable: bool = False


class InstanceReceived(Payload):
    TYPE: ClassVar[str] = "org.imarc.instance.received"

    instance_id: str
    collection: str
    site: str = ""
    filename: str = ""
    object: ObjectRef
    release_pixel_hold: bool = False


class InstanceHeld(Payload):
    TYPE: ClassVar[str] = "org.imarc.instance.held"

    instance_id: str
    collection: str
    site: str = ""
    filename: str = ""
    stage: Literal["intake", "deid"]
    reason: str
    #: a short, fixed label of the reason (e.g. patient_conflict, burned_in_phi)
    code: str = ""


class ResidualFinding(BaseModel):
    """Where deid's residual-PHI scan found an identifier of the original record in the
    output, and of what kind (name, id, date, uid, institution, station) — never the value."""

    path: str
    kind: str


class InstanceDeidentified(Payload):
    TYPE: ClassVar[str] = "org.imarc.instance.deidentified"

    instance_id: str
    collection: str
    site: str = ""
    object: ObjectRef
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str = ""
    modality: str = ""
    header: dict[str, Any] = Field(default_factory=dict)
    profile_version: int = 1
    findings: list[ResidualFinding] = Field(default_factory=list)


class PublishedInstance(BaseModel):
    sop_instance_uid: str
    key: str
    size: int
    sha256: str
    header: dict[str, Any] = Field(default_factory=dict)
    #: CRC-32 recorded when the object was written (None for objects older than that)
    crc32: int | None = None


class SeriesPublished(Payload):
    TYPE: ClassVar[str] = "org.imarc.series.published"

    collection: CollectionUpdated
    site: str = ""
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    released_at: datetime
    instances: list[PublishedInstance]


class SeriesWithdrawn(Payload):
    TYPE: ClassVar[str] = "org.imarc.series.withdrawn"

    collection: str
    series_instance_uid: str
    reason: str = ""


class SeriesIndexed(Payload):
    """The catalog's account of a series it indexed: what the public now sees of it.

    ``released_at`` names the publication it reflects, so the publisher can tell a
    confirmation of its latest publication from one of an earlier one."""

    TYPE: ClassVar[str] = "org.imarc.series.indexed"

    collection: str
    series_instance_uid: str
    study_instance_uid: str
    patient_id: str
    released_at: datetime
    instances: int


class LicenceUpdated(Payload):
    """A licence the auth service created, changed or deleted (``deleted``); services that
    name licences (intake, for new collections) keep their own copy from it."""

    TYPE: ClassVar[str] = "org.imarc.licence.updated"

    id: str
    name: str
    url: str = ""
    commercial_use: bool = False
    requires_approval: bool = False
    deleted: bool = False


EVENT_TYPES: dict[str, type[Payload]] = {
    m.TYPE: m
    for m in (
        CollectionUpdated,
        InstanceReceived,
        InstanceHeld,
        InstanceDeidentified,
        SeriesPublished,
        SeriesWithdrawn,
        SeriesIndexed,
        LicenceUpdated,
    )
}
