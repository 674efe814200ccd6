"""The hand-written migration creates exactly the tables and columns of models.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from services.catalog.bootstrap import spec
from services.catalog.models import metadata
from services.common.db import Database


# SQLite cannot reflect expression indexes (upper(...)); their presence is checked by name.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
async def test_migration_matches_models(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'catalog.sqlite'}", schema="catalog")
    try:
        await db.migrate(spec().migrations)
        await db.migrate(spec().migrations)  # idempotent
        async with db.engine.connect() as conn:
            changes = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
            names = (
                (await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'")))
                .scalars()
                .all()
            )
        assert changes == []
        expected = {ix.name for t in metadata.tables.values() for ix in t.indexes}
        assert expected <= set(names)
    finally:
        await db.dispose()
