"""Embedded mode delivers outbox events from memory (``EmbeddedBus.handoff``): the outbox
row stays unsent until every consumer is done with it, so a crash loses nothing; a failing
consumer is retried, then dead-lettered, while the others go on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from services.common.db import Database
from services.common.embedded_bus import EmbeddedBus
from services.common.events import Event
from services.common.messaging import Messaging, UnitOfWork
from tests.common.test_messaging import make_metadata

THING = "org.imarc.thing.happened"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/svc.sqlite", "svc")
    yield database
    await database.dispose()


async def until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_a_handed_off_event_is_sent_only_once_its_consumers_are_done(
    db: Database, tmp_path: Path
) -> None:
    md, effects = make_metadata()
    await db.create_all(md)
    bus = EmbeddedBus(tmp_path / "bus.sqlite", max_attempts=3, retry_base=0.02)
    await bus.start()
    m = Messaging(db, bus, md, service="svc")
    gate = asyncio.Event()

    async def effect(event: Event, uow: UnitOfWork) -> list[Event]:
        await uow.session.execute(insert(effects).values(event_id=event.id))
        return []

    apply = m.idempotent("svc.on_thing", effect)

    async def slow(event: Event) -> None:
        await gate.wait()
        await apply(event)

    await bus.subscribe("svc.on_thing", [THING], slow)
    async with m.transaction() as tx:
        tx.emit(*(Event(source="/t", type=THING) for _ in range(5)))
    m.start_relay()
    try:
        await until(lambda: bus.depth("svc.on_thing"), timeout=5)
        assert await m.pending() == 5, "not sent while the consumer is still at work"
        gate.set()

        async def sent() -> bool:
            return await m.pending() == 0

        await until(sent)
    finally:
        await m.stop_relay()
        await bus.close()
    async with db.session() as s:
        assert len((await s.scalars(select(effects.c.event_id))).all()) == 5


async def test_events_of_a_process_that_died_are_delivered_after_the_restart(
    db: Database, tmp_path: Path
) -> None:
    md, effects = make_metadata()
    await db.create_all(md)
    events = [Event(source="/t", type=THING) for _ in range(10)]

    first_bus = EmbeddedBus(tmp_path / "bus.sqlite")
    await first_bus.start()
    first = Messaging(db, first_bus, md, service="svc")
    handled: list[str] = []

    async def effect(event: Event, uow: UnitOfWork) -> list[Event]:
        await uow.session.execute(insert(effects).values(event_id=event.id))
        return []

    apply_first = first.idempotent("svc.on_thing", effect)

    async def dies_after_three(event: Event) -> None:
        if len(handled) == 3:
            await asyncio.Event().wait()  # the process is killed here
        await apply_first(event)
        handled.append(event.id)

    await first_bus.subscribe("svc.on_thing", [THING], dies_after_three)
    async with first.transaction() as tx:
        tx.emit(*events)
    first.start_relay()

    async def three_handled() -> bool:
        return len(handled) == 3

    await until(three_handled)
    # killed: nothing more runs, nothing is marked
    await first.stop_relay()
    await first_bus.close()
    assert await first.pending() == 10

    second_bus = EmbeddedBus(tmp_path / "bus.sqlite")
    await second_bus.start()
    second = Messaging(db, second_bus, md, service="svc")
    await second_bus.subscribe("svc.on_thing", [THING], second.idempotent("svc.on_thing", effect))
    second.start_relay()
    try:

        async def drained() -> bool:
            return await second.pending() == 0

        await until(drained)
    finally:
        await second.stop_relay()
        await second_bus.close()
    async with db.session() as s:
        ids = (await s.scalars(select(effects.c.event_id))).all()
    assert sorted(ids) == sorted(e.id for e in events), "each event took effect once"


async def test_a_poison_event_is_dead_lettered_while_the_queue_keeps_flowing(
    db: Database, tmp_path: Path
) -> None:
    md, effects = make_metadata()
    await db.create_all(md)
    bus = EmbeddedBus(tmp_path / "bus.sqlite", max_attempts=3, retry_base=0.05)
    await bus.start()
    m = Messaging(db, bus, md, service="svc")
    poison = Event(source="/t", type=THING, data={"poison": True})
    good = [Event(source="/t", type=THING) for _ in range(20)]
    attempts: list[str] = []

    async def effect(event: Event, uow: UnitOfWork) -> list[Event]:
        if event.data.get("poison"):
            attempts.append(event.id)
            raise ValueError("this event cannot be applied")
        await uow.session.execute(insert(effects).values(event_id=event.id))
        return []

    await bus.subscribe("svc.on_thing", [THING], m.idempotent("svc.on_thing", effect))
    async with m.transaction() as tx:
        tx.emit(poison, *good)
    m.start_relay()
    try:

        async def all_good_applied() -> bool:
            async with db.session() as s:
                return len((await s.scalars(select(effects.c.event_id))).all()) == 20

        await until(all_good_applied)
        assert len(attempts) < 3, "the others did not wait for the poison event's retries"

        async def dead_lettered() -> bool:
            return len(await bus.dead_letters("svc.on_thing")) == 1 and await m.pending() == 0

        await until(dead_lettered)
    finally:
        await m.stop_relay()
        await bus.close()
    reopened = EmbeddedBus(tmp_path / "bus.sqlite")  # the dead letter is kept on disk
    await reopened.start()
    (dead,) = await reopened.dead_letters("svc.on_thing")
    await reopened.close()
    assert dead.event.id == poison.id and dead.attempts == 3
    assert "cannot be applied" in dead.error
    assert len(attempts) == 3
