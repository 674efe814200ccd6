"""Each series keeps the attributes all its instances share, for DICOMweb searches.

QIDO-RS study and series searches match any attribute against ``series.header``; on
PostgreSQL a GIN index (jsonb_path_ops) answers exact matches. Series indexed before
this revision take their first instance's header.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

HEADER = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("series") as t:
        t.add_column(sa.Column("header", HEADER, nullable=True))
    op.execute(
        "UPDATE series SET header = (SELECT i.header FROM instances i "
        "WHERE i.series_instance_uid = series.series_instance_uid "
        "ORDER BY i.instance_number, i.sop_instance_uid LIMIT 1)"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_series_header",
            "series",
            ["header"],
            postgresql_using="gin",
            postgresql_ops={"header": "jsonb_path_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_series_header", "series")
    with op.batch_alter_table("series") as t:
        t.drop_column("header")
