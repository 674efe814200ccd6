"""download: baskets, and each series' modality and body part for searches

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
        t.add_column(sa.Column("modality", sa.String(16), nullable=True))
        t.add_column(sa.Column("body_part", sa.String(64), nullable=True))
    op.create_table(
        "baskets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("series_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "basket_series",
        sa.Column(
            "basket_id",
            sa.String(32),
            sa.ForeignKey("baskets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("series_instance_uid", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("basket_series")
    op.drop_table("baskets")
    with op.batch_alter_table("series") as t:
        t.drop_column("body_part")
        t.drop_column("modality")
