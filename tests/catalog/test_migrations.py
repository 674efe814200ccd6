"""The hand-written migrations create exactly the tables and columns of models.py, and the
re-keying of studies repairs a tree the old key had broken — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from services.catalog.bootstrap import spec
from services.catalog.models import metadata, series, studies
from services.common.db import Database

STUDY = "1.2.3.9"
T = datetime(2024, 5, 1, tzinfo=UTC)
# (reflection skips expression indexes on SQLite, so they are listed from the catalogue)
#: indexes PostgreSQL alone has (GIN over JSONB)
POSTGRES_ONLY = {"ix_series_header"}
INDEX_NAMES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index'",
    "postgresql": "SELECT indexname FROM pg_indexes WHERE schemaname = 'catalog'",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'catalog.sqlite'}"
    else:
        url = request.getfixturevalue("fresh_pg_url")
    database = Database(url, schema="catalog")
    if not database.is_sqlite:
        async with database.engine.begin() as conn:
            await conn.execute(text('CREATE SCHEMA IF NOT EXISTS "catalog"'))
    yield database
    await database.dispose()


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(spec().migrations))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


@pytest.mark.filterwarnings("ignore:.*expression-based index")
async def test_migrations_match_models(db: Database) -> None:
    await db.migrate(spec().migrations)
    await db.migrate(spec().migrations)  # idempotent
    async with db.engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"

        def compare(c: Connection) -> Any:
            def include(obj: Any, name: Any, type_: str, *_: Any) -> bool:
                return not (sqlite and type_ == "index" and name in POSTGRES_ONLY)

            context = MigrationContext.configure(c, opts={"include_object": include})
            return compare_metadata(context, metadata)

        changes = await conn.run_sync(compare)
        keys = await conn.run_sync(
            lambda c: {
                t: inspect(c).get_pk_constraint(t)["constrained_columns"] for t in metadata.tables
            }
        )
        names = set((await conn.execute(text(INDEX_NAMES[conn.dialect.name]))).scalars())
    assert changes == []
    # autogenerate does not compare primary keys
    assert keys == {t.name: [c.name for c in t.primary_key] for t in metadata.tables.values()}
    expected = {ix.name for t in metadata.tables.values() for ix in t.indexes}
    assert expected - (POSTGRES_ONLY if sqlite else set()) <= names


def _series(uid: str, patient: str) -> dict[str, Any]:
    return {
        "series_instance_uid": uid, "study_instance_uid": STUDY, "collection": "C",
        "patient_id": patient, "image_count": 1, "file_size": 1, "released_at": T,
        "published_at": T, "study_description": f"study of {patient}",
    }  # fmt: skip


@pytest.mark.filterwarnings("ignore:.*expression-based index")
async def test_rekeying_studies_repairs_a_study_that_moved_between_patients(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(_upgrade, "0001")
        # what keying by the UID alone left: series of two patients, one study row that
        # moved to the second patient and counts both
        await conn.execute(series.insert(), [_series("1.1", "A"), _series("1.2", "B")])
        await conn.execute(
            text(
                "INSERT INTO studies (study_instance_uid, collection, patient_id, study_id, "
                "series_count) VALUES (:uid, 'C', 'B', 'S-7', 2)"
            ),
            {"uid": STUDY},
        )
        await conn.run_sync(_upgrade, "head")
        rows = (
            (await conn.execute(studies.select().order_by(studies.c.patient_id))).mappings().all()
        )
    assert [
        (r["patient_id"], r["study_instance_uid"], r["series_count"], r["study_description"])
        for r in rows
    ] == [(p, STUDY, 1, d) for p, d in (("A", "study of A"), ("B", None))]
    assert [r["study_id"] for r in rows] == ["S-7", "S-7"]
    assert [r["last_released_at"] for r in rows] == [T, T]
