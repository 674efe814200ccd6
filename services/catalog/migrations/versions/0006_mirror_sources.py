"""A mirror site's sources (the feed it follows, the cursor of what it applied) and the
objects it holds per series.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mirror_sources",
        sa.Column("url", sa.String(500), primary_key=True),
        sa.Column("collections", sa.JSON(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("follow", sa.Boolean(), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("instances", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("caught_up", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "mirror_series",
        sa.Column("series_instance_uid", sa.String(64), primary_key=True),
        sa.Column("keys", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mirror_series")
    op.drop_table("mirror_sources")
