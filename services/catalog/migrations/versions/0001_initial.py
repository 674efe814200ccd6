"""The catalog's tables: collections, patients, studies, series, instances, withdrawals,
outbox and inbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
HEADER = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("licence_id", sa.String(200), nullable=False),
        sa.Column("licence_name", sa.Text(), nullable=False),
        sa.Column("licence_url", sa.Text(), nullable=False),
        sa.Column("access", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("doi", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "patients",
        sa.Column("collection", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("patient_name", sa.Text()),
        sa.Column("patient_sex", sa.Text()),
        sa.Column("patient_birth_date", sa.Text()),
        sa.Column("ethnic_group", sa.Text()),
        sa.Column("species_code", sa.Text()),
        sa.Column("species_description", sa.Text()),
        sa.Column("series_count", sa.Integer(), nullable=False),
        sa.Column("last_released_at", TS),
    )
    op.create_index(
        "ix_patients_collection_released", "patients", ["collection", "last_released_at"]
    )
    op.create_index("ix_patients_patient_id_upper", "patients", [sa.text("upper(patient_id)")])

    op.create_table(
        "studies",
        sa.Column("study_instance_uid", sa.String(64), primary_key=True),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("study_date", sa.Text()),
        sa.Column("study_description", sa.Text()),
        sa.Column("admitting_diagnoses_description", sa.Text()),
        sa.Column("study_id", sa.Text()),
        sa.Column("patient_age", sa.Text()),
        sa.Column("longitudinal_temporal_event_type", sa.Text()),
        sa.Column("longitudinal_temporal_offset_from_event", sa.Float()),
        sa.Column("series_count", sa.Integer(), nullable=False),
        sa.Column("last_released_at", TS),
    )
    op.create_index("ix_studies_collection_patient", "studies", ["collection", "patient_id"])
    op.create_index("ix_studies_patient_id_upper", "studies", [sa.text("upper(patient_id)")])

    op.create_table(
        "series",
        sa.Column("series_instance_uid", sa.String(64), primary_key=True),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("site", sa.Text()),
        sa.Column("modality", sa.Text()),
        sa.Column("protocol_name", sa.Text()),
        sa.Column("series_date", sa.Text()),
        sa.Column("series_description", sa.Text()),
        sa.Column("body_part_examined", sa.Text()),
        sa.Column("series_number", sa.Integer()),
        sa.Column("manufacturer", sa.Text()),
        sa.Column("manufacturer_model_name", sa.Text()),
        sa.Column("software_versions", sa.Text()),
        sa.Column("patient_sex", sa.Text()),
        sa.Column("patient_age", sa.Text()),
        sa.Column("admitting_diagnosis_description", sa.Text()),
        sa.Column("study_description", sa.Text()),
        sa.Column("study_date", sa.Text()),
        sa.Column("pixel_spacing", sa.Text()),
        sa.Column("slice_thickness", sa.Text()),
        sa.Column("image_count", sa.Integer(), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("released_at", TS, nullable=False),
        sa.Column("published_at", TS, nullable=False),
        sa.Column("nbia_head", sa.Text()),
        sa.Column("nbia_tail", sa.Text()),
        sa.Column("nbia_version", sa.Integer()),
    )
    op.create_index(
        "ix_series_collection_tree",
        "series",
        ["collection", "patient_id", "study_instance_uid", "series_instance_uid"],
    )
    op.create_index("ix_series_study", "series", ["study_instance_uid"])
    op.create_index("ix_series_released_at", "series", ["released_at"])
    op.create_index("ix_series_patient_id_upper", "series", [sa.text("upper(patient_id)")])
    op.create_index("ix_series_modality_upper", "series", [sa.text("upper(modality)")])

    op.create_table(
        "instances",
        sa.Column("series_instance_uid", sa.String(64), primary_key=True),
        sa.Column("sop_instance_uid", sa.String(64), primary_key=True),
        sa.Column("instance_number", sa.Integer()),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("header", HEADER, nullable=False),
    )
    op.create_table(
        "withdrawals",
        sa.Column("series_instance_uid", sa.String(64), primary_key=True),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("withdrawn_at", TS, nullable=False),
    )

    op.create_table(
        "outbox",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("published_at", TS, nullable=True),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("processed_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("inbox")
    op.drop_index("ix_outbox_published_at", "outbox")
    op.drop_table("outbox")
    op.drop_table("withdrawals")
    op.drop_table("instances")
    for name in (
        "ix_series_modality_upper",
        "ix_series_patient_id_upper",
        "ix_series_released_at",
        "ix_series_study",
        "ix_series_collection_tree",
    ):
        op.drop_index(name, "series")
    op.drop_table("series")
    op.drop_index("ix_studies_patient_id_upper", "studies")
    op.drop_index("ix_studies_collection_patient", "studies")
    op.drop_table("studies")
    op.drop_index("ix_patients_patient_id_upper", "patients")
    op.drop_index("ix_patients_collection_released", "patients")
    op.drop_table("patients")
    op.drop_table("collections")
