"""deid: where each de-identified instance's original is kept, for the residual-PHI scan

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
    with op.batch_alter_table("instances") as t:
        t.add_column(sa.Column("quarantine_key", sa.String(512), nullable=True))
        t.add_column(sa.Column("findings", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("instances") as t:
        t.drop_column("findings")
        t.drop_column("quarantine_key")
