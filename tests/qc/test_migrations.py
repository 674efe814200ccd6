"""The hand-written 0001 migrations of qc and download create exactly their models'
tables (tests/download/test_integration.py runs them on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from imarc.runtime import load_spec
from services.common.db import Database


@pytest.mark.parametrize("service", ["qc", "download"])
async def test_migrations_match_the_models(tmp_path: Path, service: str) -> None:
    spec = load_spec(service)
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/{service}.sqlite", service)
    try:
        await db.migrate(spec.migrations)
        await db.migrate(spec.migrations)  # idempotent
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), spec.metadata)
            )
    finally:
        await db.dispose()
    assert diff == []
