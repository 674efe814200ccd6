"""Tables the deid service owns. They live on the quarantine side: the patient and UID
maps link original identifiers to pseudonyms and must never reach curation or public."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import UTCDateTime
from services.common.messaging import messaging_tables

metadata = MetaData()
outbox, inbox = messaging_tables(metadata)


class Base(DeclarativeBase):
    metadata = metadata


class Collection(Base):
    """deid's copy of a collection, kept from ``collection.updated``."""

    __tablename__ = "collections"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    access: Mapped[str] = mapped_column(String(16))
    licence_id: Mapped[str] = mapped_column(String(200), default="")
    require_id_map: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProfileVersion(Base):
    """One version of a collection's profile; the current one is the highest."""

    __tablename__ = "profiles"

    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))


class IdMapEntry(Base):
    """A row of a collection's uploaded ID map (original PatientID → new PatientID)."""

    __tablename__ = "id_map"
    __table_args__ = (UniqueConstraint("collection", "id_new", name="uq_id_map_new"),)

    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    id_old: Mapped[str] = mapped_column(String(256), primary_key=True)
    id_new: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    loaded_by: Mapped[str] = mapped_column(String(200))


class PatientPseudonym(Base):
    """The pseudonym each original patient got (from the ID map or generated).

    A patient is a PatientID under its IssuerOfPatientID (empty when the file names none):
    the same ID from two issuers is two people. ``seq`` numbers generated pseudonyms; the
    unique constraints make concurrent allocations safe: a loser of a race gets an
    IntegrityError and tries again.
    """

    __tablename__ = "patients"
    __table_args__ = (
        UniqueConstraint("collection", "seq", name="uq_patients_seq"),
        UniqueConstraint("collection", "pseudonym", name="uq_patients_pseudonym"),
    )

    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    original_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(256), primary_key=True, default="")
    pseudonym: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source: Mapped[str] = mapped_column(String(16))  # "generated" or "idmap"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StudyPatient(Base):
    """The patient an original study belongs to: the first patient seen in it. An
    instance of another patient in the same study is held (a misfiled instance)."""

    __tablename__ = "study_patients"

    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(128), primary_key=True)
    original_id: Mapped[str] = mapped_column(String(256))
    issuer: Mapped[str] = mapped_column(String(256))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())


class UidMapping(Base):
    """Every UID the engine changed, original → new, per collection."""

    __tablename__ = "uid_map"

    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    old: Mapped[str] = mapped_column(String(128), primary_key=True)
    new: Mapped[str] = mapped_column(String(64))


class Instance(Base):
    """A de-identified instance: where it is in curation, under which profile, and its
    audit (attribute paths and actions only)."""

    __tablename__ = "instances"
    __table_args__ = (Index("ix_instances_collection", "collection"),)

    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    collection: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(64))
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    curation_key: Mapped[str] = mapped_column(String(512))
    #: the original in quarantine, which the residual-PHI scan compares the output with
    #: (None for instances de-identified before it was recorded)
    quarantine_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    #: how many residual-PHI findings the last scan reported
    findings: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    profile_version: Mapped[int] = mapped_column(Integer)
    profile_digest: Mapped[str] = mapped_column(String(64))
    audit: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deidentified_at: Mapped[datetime] = mapped_column(UTCDateTime())
    released_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    event_id: Mapped[str] = mapped_column(String(64))


class Hold(Base):
    """An instance kept in quarantine, with the reason and what is needed to retry it."""

    __tablename__ = "holds"
    __table_args__ = (Index("ix_holds_collection", "collection"),)

    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    collection: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    received: Mapped[dict[str, Any]] = mapped_column(JSON)  # the InstanceReceived payload
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    held_at: Mapped[datetime] = mapped_column(UTCDateTime())
    event_id: Mapped[str] = mapped_column(String(64))
    #: OCR evidence for a pixel hold: boxes of burned-in text in its first frame (None: not
    #: looked at yet)
    text_boxes: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )


class ScanRun(Base):
    """One residual-PHI scan of a whole collection again, and how far it has come. A run
    whose process died stops advancing ``updated_at`` and counts as stalled."""

    __tablename__ = "scan_runs"
    __table_args__ = (Index("ix_scan_runs_collection", "collection", "started_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    collection: Mapped[str] = mapped_column(String(64))
    #: running, done or failed
    state: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(200))
    total: Mapped[int] = mapped_column(Integer)
    scanned: Mapped[int] = mapped_column(Integer, default=0)
    findings: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
