"""Tables the qc service owns: its copy of collections, one row per instance (stage and
curation record) and one row per series (review state)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import UTCDateTime
from services.common.messaging import messaging_tables

metadata = MetaData()
# SQLite only autoincrements an INTEGER PRIMARY KEY
SEQ = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = metadata


class Collection(Base):
    """The last ``collection.updated`` record seen (published with every series)."""

    __tablename__ = "collections"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Instance(Base):
    """One submitted instance (intake's ``instance_id``) and where it stands.

    ``stage_at`` is the time of the event that set ``stage``: an older event arriving
    late (queues are independent) never moves an instance backwards.
    """

    __tablename__ = "instances"

    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    collection: Mapped[str] = mapped_column(String(64))
    site: Mapped[str] = mapped_column(String(128), default="")
    filename: Mapped[str] = mapped_column(Text, default="")
    stage: Mapped[str] = mapped_column(String(16))
    stage_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    held_stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    held_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the curation record (set by instance.deidentified; de-identified UIDs)
    series_instance_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    study_instance_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sop_class_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    patient_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    curation_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    header: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # the inventory keys (hashes) this instance's header added to the curation inventory,
    # and the object they were computed from: a replaced instance's keys are taken back
    inventory_keys: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    inventoried_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    public_inventoried: Mapped[bool] = mapped_column(Boolean, default=False)
    findings: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_instances_collection_stage", "collection", "stage"),
        Index("ix_instances_series", "series_instance_uid"),
    )


class Series(Base):
    """A series in curation (de-identified UID) and its review state."""

    __tablename__ = "series"

    series_instance_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    collection: Mapped[str] = mapped_column(String(64), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16), default="")
    review_state: Mapped[str] = mapped_column(String(32))
    reviewed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The catalog's account of the series (series.indexed): which publication it indexed
    # and what the public sees of it, compared with what was published.
    public_released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    public_instances: Mapped[int | None] = mapped_column(Integer, nullable=True)
    public_patient_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    public_study_instance_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)


class CurationSettings(Base):
    """A manager's settings of a collection's curation (TCIA's "at a glance" columns)."""

    __tablename__ = "curation_settings"

    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    submitter_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_by: Mapped[str] = mapped_column(String(128), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReviewEvent(Base):
    """One review decision on a series: the history a curator sees."""

    __tablename__ = "review_events"

    id: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    collection: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32))
    by: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    comment: Mapped[str] = mapped_column(Text, default="")


class Approval(Base):
    """A submitter's approval of a de-identified series (when the collection asks for it)."""

    __tablename__ = "approvals"

    series_instance_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    collection: Mapped[str] = mapped_column(String(64), index=True)
    by: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class Finding(Base):
    """A residual-PHI finding of deid's scan: where (element path) and what kind of
    identifier — never the value."""

    __tablename__ = "findings"

    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(512), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection: Mapped[str] = mapped_column(String(64))
    series_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64))


class InventoryCount(Base):
    """How many instances of a collection's zone carried one value at one place."""

    __tablename__ = "inventory"

    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    zone: Mapped[str] = mapped_column(String(16), primary_key=True)
    key_hash: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    device: Mapped[str] = mapped_column(Text)
    section: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    vr: Mapped[str] = mapped_column(String(4))
    creator: Mapped[str] = mapped_column(Text, default="")
    value: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer)


class Audit(Base):
    """Decisions that bypass a check (publishing despite findings), with who and why."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    collection: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64))
    by: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    why: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text, default="")


outbox, inbox = messaging_tables(metadata)
