"""qc: the catalog's account of each published series (public count check)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("series") as t:
        t.add_column(sa.Column("public_released_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("public_instances", sa.Integer(), nullable=True))
        t.add_column(sa.Column("public_patient_id", sa.String(64), nullable=True))
        t.add_column(sa.Column("public_study_instance_uid", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("series") as t:
        for name in (
            "public_study_instance_uid",
            "public_patient_id",
            "public_instances",
            "public_released_at",
        ):
            t.drop_column(name)
