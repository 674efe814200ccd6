"""A study is keyed by (collection, patient, StudyInstanceUID), not its UID alone.

Keyed by the UID alone, one study UID published under two patients was one row that moved
between them: one patient lost the study, the other counted both patients' series. The
table is rebuilt with the new key and repaired from the series table: every (collection,
patient, study) that has series gets a row (attributes from its series and from the old
row of the same UID), every count is taken again, and rows left with no series go.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ATTRIBUTES = (
    "study_date",
    "study_description",
    "admitting_diagnoses_description",
    "study_id",
    "patient_age",
    "longitudinal_temporal_event_type",
    "longitudinal_temporal_offset_from_event",
)


def _same_study(study: str) -> str:
    """``series se`` belongs to the study row ``study``."""
    return " AND ".join(
        f"se.{c} = {study}.{c}" for c in ("collection", "patient_id", "study_instance_uid")
    )


def _create(name: str, key: tuple[str, ...]) -> None:
    op.create_table(
        name,
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("study_date", sa.Text()),
        sa.Column("study_description", sa.Text()),
        sa.Column("admitting_diagnoses_description", sa.Text()),
        sa.Column("study_id", sa.Text()),
        sa.Column("patient_age", sa.Text()),
        sa.Column("longitudinal_temporal_event_type", sa.Text()),
        sa.Column("longitudinal_temporal_offset_from_event", sa.Float()),
        sa.Column("series_count", sa.Integer(), nullable=False),
        sa.Column("last_released_at", TS),
        sa.PrimaryKeyConstraint(*key, name=f"{name}_pkey"),
    )


def _replace(old: str, new: str) -> None:
    op.drop_table(old)
    op.rename_table(new, old)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER INDEX {new}_pkey RENAME TO {old}_pkey")


def upgrade() -> None:
    columns = ("collection", "patient_id", "study_instance_uid", *ATTRIBUTES)
    listed = ", ".join(columns)
    _create("studies_new", ("collection", "patient_id", "study_instance_uid"))
    op.execute(
        f"INSERT INTO studies_new ({listed}, series_count, last_released_at) "
        f"SELECT {listed}, series_count, last_released_at FROM studies"
    )
    # a study its series name but that has no row of its own (it had moved to another
    # patient): its attributes from its series and from the row that holds its UID
    op.execute(
        f"INSERT INTO studies_new ({listed}, series_count) "
        "SELECT se.collection, se.patient_id, se.study_instance_uid, MAX(se.study_date), "
        "MAX(se.study_description), MAX(se.admitting_diagnosis_description), "
        "MAX(old.study_id), MAX(se.patient_age), "
        "MAX(old.longitudinal_temporal_event_type), "
        "MAX(old.longitudinal_temporal_offset_from_event), 0 "
        "FROM series se LEFT JOIN studies old "
        "ON old.study_instance_uid = se.study_instance_uid "
        f"WHERE NOT EXISTS (SELECT 1 FROM studies_new s WHERE {_same_study('s')}) "
        "GROUP BY se.collection, se.patient_id, se.study_instance_uid"
    )
    op.execute(
        "UPDATE studies_new SET "
        f"series_count = (SELECT COUNT(*) FROM series se WHERE {_same_study('studies_new')}), "
        "last_released_at = (SELECT MAX(se.released_at) FROM series se WHERE "
        f"{_same_study('studies_new')})"
    )
    op.execute("DELETE FROM studies_new WHERE series_count = 0")
    op.drop_index("ix_studies_collection_patient", "studies")
    op.drop_index("ix_studies_patient_id_upper", "studies")
    _replace("studies", "studies_new")
    op.create_index("ix_studies_study_instance_uid", "studies", ["study_instance_uid"])
    op.create_index("ix_studies_patient_id_upper", "studies", [sa.text("upper(patient_id)")])


def downgrade() -> None:
    # One row per UID again: the study's row under its first patient is kept.
    columns = ("collection", "patient_id", "study_instance_uid", *ATTRIBUTES)
    listed = ", ".join(columns)
    _create("studies_old", ("study_instance_uid",))
    op.execute(
        f"INSERT INTO studies_old ({listed}, series_count, last_released_at) "
        f"SELECT {listed}, series_count, last_released_at FROM studies s "
        "WHERE NOT EXISTS (SELECT 1 FROM studies o WHERE "
        "o.study_instance_uid = s.study_instance_uid AND "
        "(o.collection < s.collection OR (o.collection = s.collection "
        "AND o.patient_id < s.patient_id)))"
    )
    op.drop_index("ix_studies_patient_id_upper", "studies")
    op.drop_index("ix_studies_study_instance_uid", "studies")
    _replace("studies", "studies_old")
    op.create_index("ix_studies_collection_patient", "studies", ["collection", "patient_id"])
    op.create_index("ix_studies_patient_id_upper", "studies", [sa.text("upper(patient_id)")])
