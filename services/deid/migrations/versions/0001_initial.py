"""deid: collections, profiles, ID map, patient and UID maps, instances, holds, outbox, inbox.

Revision ID: 0001
Revises:
Create Date: 2024-11-21
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
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("access", sa.String(16), nullable=False),
        sa.Column("licence_id", sa.String(200), nullable=False),
        sa.Column("require_id_map", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "profiles",
        sa.Column("collection", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "id_map",
        sa.Column("collection", sa.String(64), primary_key=True),
        sa.Column("id_old", sa.String(256), primary_key=True),
        sa.Column("id_new", sa.String(64), nullable=False),
        sa.Column("loaded_at", TS, nullable=False),
        sa.Column("loaded_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("collection", "id_new", name="uq_id_map_new"),
    )
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
    op.create_table(
        "uid_map",
        sa.Column("collection", sa.String(64), primary_key=True),
        sa.Column("old", sa.String(128), primary_key=True),
        sa.Column("new", sa.String(64), nullable=False),
    )
    op.create_table(
        "instances",
        sa.Column("instance_id", sa.String(64), primary_key=True),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("series_instance_uid", sa.String(64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False),
        sa.Column("sop_class_uid", sa.String(64), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("curation_key", sa.String(512), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("profile_version", sa.Integer(), nullable=False),
        sa.Column("profile_digest", sa.String(64), nullable=False),
        sa.Column("audit", sa.JSON(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("deidentified_at", TS, nullable=False),
        sa.Column("released_by", sa.String(200), nullable=True),
        sa.Column("event_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_instances_collection", "instances", ["collection"])
    op.create_table(
        "holds",
        sa.Column("instance_id", sa.String(64), primary_key=True),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("received", sa.JSON(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("held_at", TS, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_holds_collection", "holds", ["collection"])
    # Transactional outbox and inbox, exactly as services/common/messaging.py defines them.
    op.create_table(
        "outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
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
    for table in (
        "inbox",
        "outbox",
        "holds",
        "instances",
        "uid_map",
        "patient_map",
        "id_map",
        "profiles",
        "collections",
    ):
        op.drop_table(table)
