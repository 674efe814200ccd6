"""Every service that keeps a copy of the collections keeps the newest announcement.

``collection.updated`` is delivered at least once and not ordered across retries: a late,
redelivered or replayed older record must never roll a collection's licence or access
back. One test per service, through the consumer its bootstrap subscribes, on SQLite and
on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from imarc.runtime import load_spec
from services.common.db import Database
from services.common.events import CollectionUpdated, Event, Licence
from services.common.memory_bus import InMemoryBus
from services.common.messaging import Messaging
from services.common.service import ServiceContext
from services.common.settings import Settings
from services.common.store import open_store

KEEPERS = ("auth", "deid", "qc", "catalog", "download")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def announcement(access: str, licence: str, at: datetime) -> Event:
    record = CollectionUpdated(
        name="Lung-X",
        licence=Licence(id=licence, name=licence, url=f"https://licences.example/{licence}"),
        access=access,  # type: ignore[arg-type]
    )
    return record.event("/site-a/intake", subject="Lung-X").model_copy(update={"time": at})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/svc.sqlite"
    url: str = request.getfixturevalue("fresh_pg_url")
    return url


class Keeper:
    def __init__(self, name: str, url: str, tmp_path: Path) -> None:
        self.spec = load_spec(name)
        settings = Settings(data_dir=tmp_path, secret=SecretStr("s" * 32))
        self.db = Database(url, schema=name)
        bus = InMemoryBus()
        self.messaging = Messaging(self.db, bus, self.spec.metadata, service=name)
        ctx = ServiceContext(
            name, settings, self.db, bus, open_store(f"file://{tmp_path}/objects"), self.messaging
        )
        deps: Any = self.spec.build(ctx) if self.spec.build is not None else ctx
        (consumer,) = [c for c in self.spec.consumers(deps) if CollectionUpdated.TYPE in c.patterns]
        assert consumer.handler is not None
        self.queue, self.handler = consumer.queue, consumer.handler

    async def deliver(self, event: Event) -> None:
        handler = self.handler
        await self.messaging.apply_once(self.queue, event, lambda uow: handler(event, uow))

    async def kept(self) -> dict[str, Any]:
        table = self.spec.metadata.tables["collections"]
        async with self.db.session() as s:
            row = (await s.execute(select(table).where(table.c.name == "Lung-X"))).mappings().one()
        return dict(row)


@pytest.fixture(params=KEEPERS)
async def keeper(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> AsyncIterator[Keeper]:
    k = Keeper(request.param, database_url, tmp_path)
    await k.db.migrate(k.spec.migrations)
    yield k
    await k.db.dispose()


def _access_and_licence(row: dict[str, Any]) -> tuple[str, str]:
    if "record" in row and "access" not in row:  # qc keeps the whole record
        return row["record"]["access"], row["record"]["licence"]["id"]
    return row["access"], row["licence_id"]


async def test_a_late_older_announcement_does_not_roll_the_collection_back(
    keeper: Keeper,
) -> None:
    await keeper.deliver(announcement("public", "CC-BY-4.0", T0))
    await keeper.deliver(announcement("limited", "TCIA-Restricted", T0 + timedelta(hours=1)))
    # the first record again, redelivered late under a new id (a replay, a relay catching up)
    await keeper.deliver(announcement("public", "CC-BY-4.0", T0 + timedelta(minutes=30)))
    row = await keeper.kept()
    assert _access_and_licence(row) == ("limited", "TCIA-Restricted")
    assert row["updated_at"] == T0 + timedelta(hours=1), "the kept time is the event's, not a clock"


async def test_a_newer_announcement_replaces_the_record(keeper: Keeper) -> None:
    await keeper.deliver(announcement("limited", "TCIA-Restricted", T0))
    await keeper.deliver(announcement("public", "CC-BY-4.0", T0 + timedelta(days=1)))
    assert _access_and_licence(await keeper.kept()) == ("public", "CC-BY-4.0")
