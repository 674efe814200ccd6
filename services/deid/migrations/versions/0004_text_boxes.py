"""deid: OCR evidence of burned-in text kept with each instance held for its pixels

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("holds") as t:
        t.add_column(sa.Column("text_boxes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("holds") as t:
        t.drop_column("text_boxes")
