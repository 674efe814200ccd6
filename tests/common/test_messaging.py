"""Outbox and inbox: state and events commit together; redelivery has one effect;
the relay resumes after a restart without losing or duplicating effects.

Run on SQLite + the embedded bus, and on PostgreSQL + RabbitMQ.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text

from services.common.bus import Bus
from services.common.db import Database
from services.common.embedded_bus import EmbeddedBus
from services.common.events import Event
from services.common.messaging import Messaging, UnitOfWork, messaging_tables
from services.common.rabbit_bus import RabbitBus


def make_metadata() -> tuple[MetaData, Table]:
    md = MetaData()
    messaging_tables(md)
    effects = Table(
        "effects",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False),
    )
    return md, effects


@dataclass
class Env:
    db: Database
    bus: Bus
    metadata: MetaData
    effects: Table
    make_bus: object
    schema: str


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.rabbitmq])]
)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    md, effects = make_metadata()
    schema = "t" + uuid.uuid4().hex[:10]
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/svc.sqlite", schema)

        def make_bus() -> Bus:
            return EmbeddedBus(tmp_path / "bus.sqlite", max_attempts=3, retry_base=0.02)
    else:
        url = request.getfixturevalue("postgres_url")
        rabbit = request.getfixturevalue("rabbit_url")
        db = Database(url, schema)
        async with db.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        exchange = f"test.{schema}"

        def make_bus() -> Bus:
            return RabbitBus(rabbit, max_attempts=3, retry_base=0.02, exchange=exchange)

    await db.create_all(md)
    bus = make_bus()
    await bus.start()
    state = Env(db, bus, md, effects, make_bus, schema)
    yield state
    if isinstance(state.bus, RabbitBus):  # leave no test queues behind on the shared broker
        await state.bus.delete_queues([f"svc.on_thing.{schema}"], exchange=True)
    await state.bus.close()
    if not db.is_sqlite:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await db.dispose()


async def count(db: Database, table: Table) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(table)) or 0)


def consumer(env: Env, messaging: Messaging):  # type: ignore[no-untyped-def]
    async def handler(event: Event, uow: UnitOfWork) -> list[Event]:
        await uow.session.execute(insert(env.effects).values(event_id=event.id))
        return []

    return messaging.idempotent("svc.on_thing", handler)


async def wait_for_count(db: Database, table: Table, n: int, timeout: float = 15) -> None:
    for _ in range(int(timeout / 0.05)):
        if await count(db, table) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} rows in {table.name}, have {await count(db, table)}")


async def wait_for_effect(env: Env, event_id: str, timeout: float = 15) -> None:
    query = select(func.count()).where(env.effects.c.event_id == event_id)
    for _ in range(int(timeout / 0.05)):
        async with env.db.session() as s:
            if await s.scalar(query):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the effect of {event_id} did not appear in {timeout}s")


async def test_redelivered_event_has_exactly_one_effect(env: Env) -> None:
    m = Messaging(env.db, env.bus, env.metadata, service="svc")
    await env.bus.subscribe(f"svc.on_thing.{env.schema}", ["org.imarc.thing.#"], consumer(env, m))
    e = Event(source="/t", type="org.imarc.thing.happened")
    await env.bus.publish([e, e, e])  # the broker redelivers: at least once
    last = Event(source="/t", type="org.imarc.thing.happened")
    await env.bus.publish([last])
    # one consumer handles its queue in order: once the last event took effect, every
    # copy before it has been handled
    await wait_for_effect(env, last.id)
    async with env.db.session() as s:
        ids = (await s.scalars(select(env.effects.c.event_id))).all()
    assert sorted(ids).count(e.id) == 1
    assert len(ids) == 2


async def test_state_and_events_commit_together(env: Env) -> None:
    m = Messaging(env.db, env.bus, env.metadata, service="svc")
    with pytest.raises(RuntimeError):
        async with m.transaction() as tx:
            await tx.session.execute(insert(env.effects).values(event_id="rolled-back"))
            tx.emit(Event(source="/t", type="org.imarc.thing.happened"))
            raise RuntimeError("the request failed")
    assert await count(env.db, env.effects) == 0
    assert await m.pending() == 0, "an event of a rolled-back change must not be sent"


class FlakyBus:
    """Publishes, then 'crashes' before the relay can mark the rows as sent."""

    def __init__(self, inner: Bus) -> None:
        self.inner = inner

    async def publish_encoded(self, messages):  # type: ignore[no-untyped-def]
        await self.inner.publish_encoded(messages)
        raise ConnectionError("process killed after publishing")


async def test_outbox_relay_resumes_after_restart_without_loss_or_duplicate_effect(
    env: Env,
) -> None:
    queue = f"svc.on_thing.{env.schema}"
    first = Messaging(env.db, FlakyBus(env.bus), env.metadata, service="svc")  # type: ignore[arg-type]
    events = [Event(source="/t", type="org.imarc.thing.happened") for _ in range(25)]
    async with first.transaction() as tx:
        tx.emit(*events)
    with pytest.raises(ConnectionError):
        await first.relay_once(limit=10)  # 10 went out; none marked: the process died
    assert await first.pending() == 25

    # restart: a new bus connection and a new relay over the same outbox
    await env.bus.close()
    bus = env.make_bus()  # type: ignore[operator]
    await bus.start()
    env.bus = bus
    second = Messaging(env.db, bus, env.metadata, service="svc")
    await bus.subscribe(queue, ["org.imarc.thing.#"], consumer(env, second))
    second.start_relay()
    second.notify()
    try:
        await wait_for_count(env.db, env.effects, 25)
        for _ in range(100):
            if await second.pending() == 0:
                break
            await asyncio.sleep(0.05)
        assert await second.pending() == 0
        # published after everything the relay sent (first copies and re-sent ones): once
        # it took effect, every earlier copy has been handled
        last = Event(source="/t", type="org.imarc.thing.happened")
        await bus.publish([last])
        await wait_for_effect(env, last.id)
    finally:
        await second.stop_relay()
    async with env.db.session() as s:
        ids = (await s.scalars(select(env.effects.c.event_id))).all()
    assert sorted(ids) == sorted([*(e.id for e in events), last.id])


async def test_group_commit_isolates_a_failing_effect(env: Env) -> None:
    m = Messaging(env.db, env.bus, env.metadata, service="svc")
    events = [Event(source="/t", type="org.imarc.thing.happened") for _ in range(20)]
    bad = events[7]

    def effect_for(e: Event):  # type: ignore[no-untyped-def]
        async def effect(uow: UnitOfWork) -> list[Event]:
            s = uow.session
            await s.execute(insert(env.effects).values(event_id=e.id))
            if e.id == bad.id:
                raise ValueError("this event cannot be applied")
            return []

        return effect

    results = await asyncio.gather(
        *(m.apply_once("svc.group", e, effect_for(e)) for e in events),
        return_exceptions=True,
    )
    assert isinstance(results[7], ValueError)
    assert [r for i, r in enumerate(results) if i != 7] == [True] * 19
    async with env.db.session() as s:
        ids = sorted((await s.scalars(select(env.effects.c.event_id))).all())
    assert ids == sorted(e.id for e in events if e.id != bad.id)
    # applied ones are not applied again; the failed one can still be retried
    again = await asyncio.gather(*(m.apply_once("svc.group", e, effect_for(e)) for e in events[:3]))
    assert again == [False, False, False]


async def test_prune_keeps_unsent_events_and_recent_records(env: Env) -> None:
    m = Messaging(env.db, env.bus, env.metadata, service="svc")
    async with m.transaction() as tx:
        tx.emit(*(Event(source="/t", type="org.imarc.thing.happened") for _ in range(3)))
    sent = await m.relay_once(limit=2)  # two published, one still waiting
    assert sent == 2
    e = Event(source="/t", type="org.imarc.thing.happened")
    await m.apply_once("svc.keep", e, lambda s: _no_events())
    later = datetime.now(UTC) + timedelta(days=2)
    assert await m.prune(now=later) == (2, 0), "published rows past retention go"
    assert await m.pending() == 1, "an unsent event is never pruned"
    assert await m.seen("svc.keep", e.id), "inbox records are kept for two weeks"
    assert await m.prune(now=datetime.now(UTC) + timedelta(days=15)) == (0, 1)
    assert not await m.seen("svc.keep", e.id)


async def _no_events() -> list[Event]:
    return []
