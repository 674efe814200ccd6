"""Submissions span requests (sent/files/via), their members, and each instance's stage.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("submissions") as t:
        t.add_column(sa.Column("sent", sa.Integer(), nullable=True))
        t.add_column(sa.Column("files", sa.Integer(), nullable=False, server_default="0"))
        t.add_column(sa.Column("via", sa.String(16), nullable=False, server_default="http"))
        t.add_column(sa.Column("updated_at", TS, nullable=True))
    with op.batch_alter_table("held_instances") as t:
        t.add_column(sa.Column("code", sa.String(32), nullable=False, server_default=""))
    op.create_index(
        "ix_received_instances_sop_instance_uid", "received_instances", ["sop_instance_uid"]
    )
    op.create_table(
        "submission_members",
        sa.Column("submission_id", sa.String(32), primary_key=True),
        sa.Column("instance_id", sa.String(32), primary_key=True),
        sa.Column("filename", sa.Text(), nullable=False),
    )
    op.create_table(
        "instance_states",
        sa.Column("instance_id", sa.String(32), primary_key=True),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("held_stage", sa.String(16), nullable=False),
        sa.Column("reason_code", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("deid_uid", sa.String(64), nullable=False),
        sa.Column("stage_at", TS, nullable=False),
    )
    op.create_index(
        "ix_instance_states_collection_stage", "instance_states", ["collection", "stage"]
    )
    op.create_index("ix_instance_states_deid_uid", "instance_states", ["deid_uid"])
    op.create_table(
        "audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("instance_id", sa.String(32), nullable=False),
        sa.Column("submission_id", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_audit_collection_at", "audit", ["collection", "at"])


def downgrade() -> None:
    op.drop_table("audit")
    op.drop_table("instance_states")
    op.drop_table("submission_members")
    op.drop_index("ix_received_instances_sop_instance_uid", "received_instances")
    with op.batch_alter_table("held_instances") as t:
        t.drop_column("code")
    with op.batch_alter_table("submissions") as t:
        for c in ("updated_at", "via", "files", "sent"):
            t.drop_column(c)
