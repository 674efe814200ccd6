"""A collection's citation and data usage policy (carried by collection.updated).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("collections") as t:
        t.add_column(sa.Column("citation", sa.Text(), nullable=False, server_default=""))
        t.add_column(
            sa.Column("data_usage_policy", sa.String(500), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("collections") as t:
        t.drop_column("data_usage_policy")
        t.drop_column("citation")
