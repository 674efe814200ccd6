"""Integrity: which patient each Study/Series/SOP Instance UID was first received under,
and what a file held for a patient conflict was (for its release).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HELD_IDENTITY = (
    ("patient_id", sa.Text()),
    ("issuer_of_patient_id", sa.Text()),
    ("study_instance_uid", sa.String(64)),
    ("series_instance_uid", sa.String(64)),
    ("sop_instance_uid", sa.String(64)),
    ("sop_class_uid", sa.String(64)),
    ("modality", sa.String(16)),
)


def upgrade() -> None:
    op.create_table(
        "uid_owners",
        sa.Column("collection", sa.String(64), primary_key=True),
        sa.Column("uid", sa.String(64), primary_key=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("patient", sa.String(32), nullable=False),
        sa.Column("conflicted", sa.Boolean(), nullable=False),
    )
    with op.batch_alter_table("held_instances") as t:
        for name, kind in HELD_IDENTITY:
            t.add_column(sa.Column(name, kind, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("held_instances") as t:
        for name, _ in HELD_IDENTITY:
            t.drop_column(name)
    op.drop_table("uid_owners")
