"""Shared carts: named lists of series opened with NBIA's v1 getContentsByName.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_carts",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "shared_cart_series",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("series_instance_uid", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shared_cart_series")
    op.drop_table("shared_carts")
