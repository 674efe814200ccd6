"""insert_ignore on both backends: exact counts for one row and for many, and a row that
exists already (by its key or by any unique constraint) is left as it is."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, UniqueConstraint, select

from services.common.db import Database
from services.common.persistence import insert_ignore

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(32), nullable=False),
    Column("colour", String(32), nullable=False),
    UniqueConstraint("name"),
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, schema="public")  # a fresh database: its own public schema
    await database.create_all(metadata)
    yield database
    await database.dispose()


async def test_one_row_is_inserted_once_and_never_overwritten(db: Database) -> None:
    async with db.session() as s, s.begin():
        assert await insert_ignore(s, things, [{"id": 1, "name": "a", "colour": "red"}]) == 1
        assert await insert_ignore(s, things, [{"id": 1, "name": "a", "colour": "blue"}]) == 0
        # another key, but the same name: the unique constraint keeps the first row too
        assert await insert_ignore(s, things, [{"id": 2, "name": "a", "colour": "blue"}]) == 0
        rows = (await s.execute(select(things.c.id, things.c.colour))).all()
    assert rows == [(1, "red")]


async def test_many_rows_count_only_the_new_ones(db: Database) -> None:
    async with db.session() as s, s.begin():
        await insert_ignore(s, things, [{"id": 2, "name": "b", "colour": "red"}], key=["id"])
        rows = [{"id": i, "name": f"n{i}", "colour": "green"} for i in range(1, 5)]
        assert await insert_ignore(s, things, rows, key=["id"]) == 3
        assert await insert_ignore(s, things, rows, key=["id"]) == 0
        kept = dict((await s.execute(select(things.c.id, things.c.colour))).all())
    assert kept == {1: "green", 2: "red", 3: "green", 4: "green"}
