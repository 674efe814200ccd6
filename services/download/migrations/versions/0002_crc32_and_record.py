"""download: each instance's CRC-32, each collection's whole record

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


def upgrade() -> None:
    with op.batch_alter_table("instances") as t:
        t.add_column(sa.Column("crc32", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("collections") as t:
        t.add_column(sa.Column("record", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("collections") as t:
        t.drop_column("record")
    with op.batch_alter_table("instances") as t:
        t.drop_column("crc32")
