"""The catalog's tables: a read model built from series.* and collection.* events.

Series rows carry every column the NBIA series listings need (patient, study, counts,
sizes) so that a search reads one indexed table and never aggregates instances. Patients
and studies keep their own attributes plus the number of visible series; a patient or
study with no visible series is deleted, so no query has to filter on visibility.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic_core import to_json
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from services.common.db import UTCDateTime
from services.common.messaging import messaging_tables

metadata = MetaData()


class HeaderJSON(TypeDecorator[Any]):
    """An instance header (DICOM JSON): JSONB on PostgreSQL, so that its attributes can be
    queried later (QIDO-RS), JSON text on SQLite. Encoded with pydantic-core, which is
    about twice as fast as json.dumps on a 4 KB header; indexing writes thousands."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], str | None]:
        return lambda value: None if value is None else to_json(value).decode()


collections = Table(
    "collections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("licence_id", String(200), nullable=False, default=""),
    Column("licence_name", Text, nullable=False, default=""),
    Column("licence_url", Text, nullable=False, default=""),
    Column("access", String(16), nullable=False, default="public"),
    Column("description", Text, nullable=False, default=""),
    Column("doi", Text, nullable=False, default=""),
    # time of the event whose record is stored: an older event never overwrites a newer one
    Column("updated_at", UTCDateTime(), nullable=False),
)

patients = Table(
    "patients",
    metadata,
    Column("collection", String(64), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
    Column("patient_name", Text),
    Column("patient_sex", Text),
    Column("patient_birth_date", Text),
    Column("ethnic_group", Text),
    Column("species_code", Text),
    Column("species_description", Text),
    Column("series_count", Integer, nullable=False, default=0),
    Column("last_released_at", UTCDateTime()),
    Index("ix_patients_collection_released", "collection", "last_released_at"),
)

# A study is keyed by its patient as well as its UID: the same StudyInstanceUID under two
# patients (or in two collections) is two studies, each counting its own series.
studies = Table(
    "studies",
    metadata,
    Column("collection", String(64), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
    Column("study_instance_uid", String(64), primary_key=True),
    Column("study_date", Text),
    Column("study_description", Text),
    Column("admitting_diagnoses_description", Text),
    Column("study_id", Text),
    Column("patient_age", Text),
    Column("longitudinal_temporal_event_type", Text),
    Column("longitudinal_temporal_offset_from_event", Float),
    Column("series_count", Integer, nullable=False, default=0),
    Column("last_released_at", UTCDateTime()),
    Index("ix_studies_study_instance_uid", "study_instance_uid"),
)

series = Table(
    "series",
    metadata,
    Column("series_instance_uid", String(64), primary_key=True),
    Column("study_instance_uid", String(64), nullable=False),
    Column("collection", String(64), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("site", Text),
    Column("modality", Text),
    Column("protocol_name", Text),
    Column("series_date", Text),
    Column("series_description", Text),
    Column("body_part_examined", Text),
    Column("series_number", Integer),
    Column("manufacturer", Text),
    Column("manufacturer_model_name", Text),
    Column("software_versions", Text),
    Column("patient_sex", Text),
    Column("patient_age", Text),
    Column("admitting_diagnosis_description", Text),
    Column("study_description", Text),
    Column("study_date", Text),
    Column("pixel_spacing", Text),
    Column("slice_thickness", Text),
    Column("image_count", Integer, nullable=False),
    Column("file_size", BigInteger, nullable=False),
    Column("released_at", UTCDateTime(), nullable=False),
    # CloudEvents time of the publication indexed here (orders publish against withdraw)
    Column("published_at", UTCDateTime(), nullable=False),
    # the series' getSeries JSON around the licence fields (domain.series_json_parts)
    Column("nbia_head", Text),
    Column("nbia_tail", Text),
    Column("nbia_version", Integer),
    # the attributes every instance of the series shares (DICOM JSON): what QIDO-RS study
    # and series searches match against
    Column("header", HeaderJSON()),
    # (collection, patient, study, series) is the tree order listings are returned in
    Index(
        "ix_series_collection_tree",
        "collection",
        "patient_id",
        "study_instance_uid",
        "series_instance_uid",
    ),
    Index("ix_series_study", "study_instance_uid"),
    Index("ix_series_released_at", "released_at"),
)

instances = Table(
    "instances",
    metadata,
    Column("series_instance_uid", String(64), primary_key=True),
    Column("sop_instance_uid", String(64), primary_key=True),
    Column("instance_number", Integer),
    Column("key", String(400), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("header", HeaderJSON(), nullable=False),
)

# NBIA filters PatientID and Modality case-insensitively (UPPER on both sides).
Index("ix_patients_patient_id_upper", func.upper(patients.c.patient_id))
Index("ix_studies_patient_id_upper", func.upper(studies.c.patient_id))
Index("ix_series_patient_id_upper", func.upper(series.c.patient_id))
Index("ix_series_modality_upper", func.upper(series.c.modality))
# QIDO-RS matches exact values of any attribute by JSONB containment (header @> {...}),
# which this index answers; SQLite (embedded, small) reads the rows.
Index(
    "ix_series_header",
    series.c.header,
    postgresql_using="gin",
    postgresql_ops={"header": "jsonb_path_ops"},
).ddl_if(dialect="postgresql")

# A withdrawn series leaves a tombstone, so that a publication older than the withdrawal
# (redelivered late) cannot bring it back.
withdrawals = Table(
    "withdrawals",
    metadata,
    Column("series_instance_uid", String(64), primary_key=True),
    Column("collection", String(64), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("withdrawn_at", UTCDateTime(), nullable=False),
)

# Shared carts: a named list of series that anyone may open with NBIA's v1
# getContentsByName (each reader sees the series their access allows).
shared_carts = Table(
    "shared_carts",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)
shared_cart_series = Table(
    "shared_cart_series",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("series_instance_uid", String(64), nullable=False),
)

# The mirror feed (services/catalog/feed.py): every public change the catalog applied, in
# the order a sequencer gave them. A row is appended with no position in the transaction
# that applied the change; the sequencer numbers committed rows 1, 2, 3... under the lock
# of ``feed_head``, so a reader never meets a number that a later commit fills in below.
feed = Table(
    "feed",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("position", BigInteger, unique=True),
    Column("kind", String(32), nullable=False),
    Column("collection", String(64), nullable=False),
    Column("subject", String(100), nullable=False),
    Column("time", UTCDateTime(), nullable=False),
    # the entry as readers get it (type, data, attribution), written once
    Column("entry", JSON, nullable=False),
    Index("ix_feed_unpositioned", "id", postgresql_where=text("position IS NULL")),
    Index("ix_feed_collection_subject", "collection", "subject"),
)
# One row (id 1): the last position given and the last one pushed to the feed exchange.
feed_head = Table(
    "feed_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("position", BigInteger, nullable=False, default=0),
    Column("pushed", BigInteger, nullable=False, default=0),
)

# A mirror site's sources (services/catalog/mirror.py): the feed it follows and the cursor
# of the last entry applied, committed with the events that applied it.
mirror_sources = Table(
    "mirror_sources",
    metadata,
    Column("url", String(500), primary_key=True),
    Column("collections", JSON, nullable=False),
    Column("token", Text, nullable=False, default=""),
    Column("follow", Boolean, nullable=False, default=False),
    Column("cursor", Text, nullable=False, default=""),
    Column("entries", BigInteger, nullable=False, default=0),
    Column("instances", BigInteger, nullable=False, default=0),
    Column("bytes", BigInteger, nullable=False, default=0),
    # "following", "caught up" (and, without follow, done), or what went wrong
    Column("state", Text, nullable=False, default="following"),
    Column("caught_up", Boolean, nullable=False, default=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# The objects a mirror holds for each series it mirrored (removed when it is withdrawn).
mirror_series = Table(
    "mirror_series",
    metadata,
    Column("series_instance_uid", String(64), primary_key=True),
    Column("keys", JSON, nullable=False),
)

outbox, inbox = messaging_tables(metadata)
