"""auth: the addresses each account logged in from (hashed), where the account-wide login
lockout does not hold.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "known_addresses",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_known_addresses_last_login_at", "known_addresses", ["last_login_at"])


def downgrade() -> None:
    op.drop_table("known_addresses")
