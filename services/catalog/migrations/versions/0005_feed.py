"""The mirror feed: every public change in the order the sequencer numbered it.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("position", sa.BigInteger(), unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(100), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entry", sa.JSON(), nullable=False),
    )
    op.create_index(
        "ix_feed_unpositioned", "feed", ["id"], postgresql_where=sa.text("position IS NULL")
    )
    op.create_index("ix_feed_collection_subject", "feed", ["collection", "subject"])
    head = op.create_table(
        "feed_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("pushed", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "position": 0, "pushed": 0}])


def downgrade() -> None:
    op.drop_table("feed_head")
    op.drop_table("feed")
