"""Intake tables: collections, submissions, received and held instances, outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("licence_id", sa.String(64), nullable=False),
        sa.Column("licence_name", sa.String(200), nullable=False),
        sa.Column("licence_url", sa.String(500), nullable=False),
        sa.Column("access", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("doi", sa.String(200), nullable=False),
        sa.Column("require_id_map", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("submitted_by", sa.String(200), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("accepted_count", sa.Integer(), nullable=False),
        sa.Column("held_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["collection"], ["collections.name"]),
    )
    op.create_index("ix_submissions_collection", "submissions", ["collection"])
    op.create_table(
        "received_instances",
        sa.Column("instance_id", sa.String(32), nullable=False),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("submission_id", sa.String(32), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.Text(), nullable=False),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("series_instance_uid", sa.String(64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False),
        sa.Column("sop_class_uid", sa.String(64), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("first_received_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("times_received", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id"),
        sa.ForeignKeyConstraint(["collection"], ["collections.name"]),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"]),
    )
    op.create_index("ix_received_instances_collection", "received_instances", ["collection"])
    op.create_table(
        "held_instances",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("submission_id", sa.String(32), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("key", sa.String(300), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["collection"], ["collections.name"]),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"]),
    )
    op.create_index(
        "ix_held_instances_collection_received_at", "held_instances", ["collection", "received_at"]
    )
    # The transactional outbox and idempotent inbox (services/common/messaging.py).
    op.create_table(
        "outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("published_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(200), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("processed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )


def downgrade() -> None:
    op.drop_table("inbox")
    op.drop_index("ix_outbox_published_at", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_held_instances_collection_received_at", table_name="held_instances")
    op.drop_table("held_instances")
    op.drop_index("ix_received_instances_collection", table_name="received_instances")
    op.drop_table("received_instances")
    op.drop_index("ix_submissions_collection", table_name="submissions")
    op.drop_table("submissions")
    op.drop_table("collections")
