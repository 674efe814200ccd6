"""Tables the intake service owns: collections, submissions, received and held instances,
and its copy of the licences the auth service announces."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import UTCDateTime
from services.common.messaging import messaging_tables

metadata = MetaData()
outbox, inbox = messaging_tables(metadata)

Timestamp = UTCDateTime()


class Base(DeclarativeBase):
    metadata = metadata


class Collection(Base):
    """A collection registered for submission; its record travels as collection.updated."""

    __tablename__ = "collections"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    licence_id: Mapped[str] = mapped_column(String(64))
    licence_name: Mapped[str] = mapped_column(String(200))
    licence_url: Mapped[str] = mapped_column(String(500))
    access: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    doi: Mapped[str] = mapped_column(String(200), default="")
    require_id_map: Mapped[bool] = mapped_column(Boolean, default=False)
    citation: Mapped[str] = mapped_column(Text, default="")
    data_usage_policy: Mapped[str] = mapped_column(String(500), default="")
    face_reconstructable: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class LicenceRecord(Base):
    """A licence as the auth service last announced it (licence.updated). ``deleted`` keeps
    a deleted licence's id, so that it is refused for new collections even where a built-in
    licence has the same id. ``announced_at`` is the announcing event's time: an older
    event, delivered late, does not overwrite a newer one."""

    __tablename__ = "licences"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(500))
    commercial_use: Mapped[bool] = mapped_column(Boolean)
    requires_approval: Mapped[bool] = mapped_column(Boolean)
    deleted: Mapped[bool] = mapped_column(Boolean)
    announced_at: Mapped[datetime] = mapped_column(Timestamp)


class Submission(Base):
    """One upload request: who sent how many files for which collection and site."""

    __tablename__ = "submissions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection: Mapped[str] = mapped_column(ForeignKey("collections.name"), index=True)
    site: Mapped[str] = mapped_column(String(64))
    submitted_by: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    accepted_count: Mapped[int]
    held_count: Mapped[int]
    #: how many files the submitter says it is sending (None: not declared)
    sent: Mapped[int | None] = mapped_column(nullable=True)
    #: files the server received for it, over every request, association or STOW call
    files: Mapped[int] = mapped_column(default=0)
    #: how the files came: http, dicom (C-STORE) or stow
    via: Mapped[str] = mapped_column(String(16), default="http")
    updated_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


class SubmissionMember(Base):
    """An instance a submission sent (or, resumed, found already here): what its counts
    are made of. An instance sent by two submissions belongs to both."""

    __tablename__ = "submission_members"

    submission_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    filename: Mapped[str] = mapped_column(Text, default="")


class InstanceState(Base):
    """Where one instance is in the pipeline, as intake last learned it: received, held
    (at intake or de-id, with a reason code and sentence), de-identified or published.
    De-id's and qc's/catalog's events move it on; ``stage_at`` is the time of what moved
    it last, so a late event does not move it back."""

    __tablename__ = "instance_states"
    __table_args__ = (Index("ix_instance_states_collection_stage", "collection", "stage"),)

    instance_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16))
    held_stage: Mapped[str] = mapped_column(String(16), default="")
    reason_code: Mapped[str] = mapped_column(String(32), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    #: the de-identified SOPInstanceUID (how a published series names it)
    deid_uid: Mapped[str] = mapped_column(String(64), default="", index=True)
    stage_at: Mapped[datetime] = mapped_column(Timestamp)


class ReceivedInstance(Base):
    """An instance in quarantine, one row per instance_id: a re-sent instance updates it.

    This is the quarantine side, so the original UIDs and PatientID are kept here (never
    in object keys, never in events).
    """

    __tablename__ = "received_instances"

    instance_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection: Mapped[str] = mapped_column(ForeignKey("collections.name"), index=True)
    site: Mapped[str] = mapped_column(String(64))
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id"))
    filename: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(Text)
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    first_received_at: Mapped[datetime] = mapped_column(Timestamp)
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    times_received: Mapped[int] = mapped_column(default=1)


class HeldInstance(Base):
    """A file intake could not accept; its bytes stay in quarantine under ``key``."""

    __tablename__ = "held_instances"
    __table_args__ = (
        Index("ix_held_instances_collection_received_at", "collection", "received_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection: Mapped[str] = mapped_column(ForeignKey("collections.name"))
    site: Mapped[str] = mapped_column(String(64))
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id"))
    filename: Mapped[str] = mapped_column(Text)
    key: Mapped[str | None] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    code: Mapped[str] = mapped_column(String(32), default="")
    #: what a file held for a patient conflict is (empty for a file that could not be read)
    patient_id: Mapped[str] = mapped_column(Text, default="")
    issuer_of_patient_id: Mapped[str] = mapped_column(Text, default="")
    study_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    series_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    sop_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    sop_class_uid: Mapped[str] = mapped_column(String(64), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")


class AuditEntry(Base):
    """What happened to submitted instances beyond their receipt, and who did it: an
    instance replaced by a new version, released or rejected from quarantine, an
    association refused. ``detail`` never holds a header value."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_collection_at", "collection", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    collection: Mapped[str] = mapped_column(String(64), default="")
    instance_id: Mapped[str] = mapped_column(String(32), default="")
    submission_id: Mapped[str] = mapped_column(String(32), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


class UidOwner(Base):
    """The patient (a keyed hash of PatientID + IssuerOfPatientID) a Study, Series or SOP
    Instance UID was first received under in a collection; ``conflicted`` marks a study
    received under two patients, held as a whole."""

    __tablename__ = "uid_owners"

    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[str] = mapped_column(String(16))
    patient: Mapped[str] = mapped_column(String(32))
    conflicted: Mapped[bool] = mapped_column(Boolean, default=False)


class DicomSite(Base):
    """A calling AE title a site sends from by DICOM, and the collection it may send to."""

    __tablename__ = "dicom_sites"

    ae_title: Mapped[str] = mapped_column(String(16), primary_key=True)
    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(Timestamp)
