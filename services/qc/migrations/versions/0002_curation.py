"""qc: curation workspace (settings, review history, submitter approvals, residual-PHI
findings, tag inventories, audit)

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

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("instances") as t:
        t.add_column(sa.Column("inventory_keys", sa.JSON(), nullable=True))
        t.add_column(sa.Column("inventoried_sha256", sa.String(64), nullable=True))
        t.add_column(sa.Column("findings", sa.Integer(), nullable=False, server_default="0"))
        t.add_column(
            sa.Column("public_inventoried", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "curation_settings",
        sa.Column("collection", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("submitter_approval", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "review_events",
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("series_instance_uid", sa.String(64), nullable=False),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("by", sa.String(128), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
    )
    op.create_index(
        "ix_review_events_series_instance_uid", "review_events", ["series_instance_uid"]
    )
    op.create_table(
        "approvals",
        sa.Column("series_instance_uid", sa.String(64), primary_key=True),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("by", sa.String(128), nullable=False),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_approvals_collection", "approvals", ["collection"])
    op.create_table(
        "findings",
        sa.Column("instance_id", sa.String(64), primary_key=True),
        sa.Column("path", sa.String(512), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("series_instance_uid", sa.String(64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False),
    )
    op.create_index("ix_findings_series_instance_uid", "findings", ["series_instance_uid"])
    op.create_table(
        "inventory",
        sa.Column("collection", sa.String(64), primary_key=True),
        sa.Column("zone", sa.String(16), primary_key=True),
        sa.Column("key_hash", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("device", sa.Text(), nullable=False),
        sa.Column("section", sa.String(16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("vr", sa.String(4), nullable=False),
        sa.Column("creator", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("by", sa.String(128), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
    )
    op.create_index("ix_audit_collection", "audit", ["collection"])


def downgrade() -> None:
    for table in ("audit", "inventory", "findings", "approvals", "review_events"):
        op.drop_table(table)
    op.drop_table("curation_settings")
    with op.batch_alter_table("instances") as t:
        t.drop_column("public_inventoried")
        t.drop_column("findings")
        t.drop_column("inventoried_sha256")
        t.drop_column("inventory_keys")
