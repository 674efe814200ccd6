"""deid: a patient is a PatientID under its IssuerOfPatientID; each study's patient

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
COLUMNS = "collection, original_id, pseudonym, seq, source, created_at"


def upgrade() -> None:
    op.create_table(
        "patients",
        sa.Column("collection", sa.String(64), primary_key=True),
        sa.Column("original_id", sa.String(256), primary_key=True),
        sa.Column("issuer", sa.String(256), primary_key=True),
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("collection", "seq", name="uq_patients_seq"),
        sa.UniqueConstraint("collection", "pseudonym", name="uq_patients_pseudonym"),
    )
    op.execute(f"INSERT INTO patients ({COLUMNS}, issuer) SELECT {COLUMNS}, '' FROM patient_map")
    op.drop_table("patient_map")
    op.create_table(
        "study_patients",
        sa.Column("collection", sa.String(64), primary_key=True),
        sa.Column("study_uid", sa.String(128), primary_key=True),
        sa.Column("original_id", sa.String(256), nullable=False),
        sa.Column("issuer", sa.String(256), nullable=False),
        sa.Column("first_seen", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("study_patients")
    op.create_table(
        "patient_map",
        sa.Column("collection", sa.String(64), primary_key=True),
        sa.Column("original_id", sa.String(256), primary_key=True),
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("collection", "seq", name="uq_patient_map_seq"),
        sa.UniqueConstraint("collection", "pseudonym", name="uq_patient_map_pseudonym"),
    )
    op.execute(
        f"INSERT INTO patient_map ({COLUMNS}) SELECT {COLUMNS} FROM patients WHERE issuer = ''"
    )
    op.drop_table("patients")
