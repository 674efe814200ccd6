"""auth: a licence approval names the collections it covers (a manager's approval covers
the collections they manage); null is an admin's approval of the whole licence.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("licence_acceptances") as batch:
        batch.add_column(sa.Column("collections", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("licence_acceptances") as batch:
        batch.drop_column("collections")
