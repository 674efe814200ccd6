"""One contract for every bus: the in-memory test bus and the embedded one must not promise
what RabbitMQ won't."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.common.bus import Bus, topic_matches
from services.common.embedded_bus import EmbeddedBus
from services.common.events import Event
from services.common.memory_bus import InMemoryBus
from services.common.rabbit_bus import RabbitBus


async def _bus(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    b: Bus
    if kind == "memory":
        b = InMemoryBus(max_attempts=3)
    elif kind == "embedded":
        b = EmbeddedBus(tmp_path / "bus.sqlite", max_attempts=3, retry_base=0.02)
    else:
        url = request.getfixturevalue("rabbit_url")
        # A private exchange per test keeps runs from seeing each other's messages.
        b = RabbitBus(url, max_attempts=3, retry_base=0.02, exchange=f"test.{uuid.uuid4().hex}")
    await b.start()
    yield b
    if isinstance(b, RabbitBus):  # leave no test queues behind on the shared broker
        await b.delete_queues(exchange=True)
    await b.close()


RABBITMQ = pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)


@pytest.fixture(params=["memory", "embedded", RABBITMQ])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    async for b in _bus(request.param, request, tmp_path):
        yield b


@pytest.fixture(params=["embedded", RABBITMQ])
async def durable_bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """The buses of deployments: they keep dead letters for an operator to replay or drop."""
    async for b in _bus(request.param, request, tmp_path):
        yield b


def q(name: str) -> str:
    return f"test.{name}.{uuid.uuid4().hex[:8]}"


async def eventually(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def ev(kind: str = "org.imarc.instance.received", **data: object) -> Event:
    return Event(source="/test", type=kind, data=dict(data))


async def idle(bus: Bus, queue: str, timeout: float = 10.0) -> None:
    """Wait until ``queue`` holds nothing: no message waiting, none scheduled for a retry.

    A check that nothing more was delivered is only meaningful once this holds; a fixed
    sleep would pass whenever the late delivery happens to come after it.
    """
    queues = [queue, queue + ".retry"] if isinstance(bus, RabbitBus) else [queue]
    for _ in range(int(timeout / 0.02)):
        if all([await bus.depth(name) == 0 for name in queues]):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{queue} still holds messages after {timeout}s")


async def test_delivers_to_every_bound_queue_in_order(bus: Bus) -> None:
    a, b = [], []

    async def on_a(e: Event) -> None:
        a.append(e.data["n"])

    async def on_b(e: Event) -> None:
        b.append(e.data["n"])

    await bus.subscribe(q("a"), ["org.imarc.instance.*"], on_a)
    await bus.subscribe(q("b"), ["org.imarc.#"], on_b)
    await bus.publish([ev(n=i) for i in range(20)])
    await eventually(lambda: len(a) == 20 and len(b) == 20)
    assert a == list(range(20)) and b == list(range(20))


async def test_unbound_types_are_not_delivered(bus: Bus) -> None:
    got: list[Event] = []

    async def on(e: Event) -> None:
        got.append(e)

    await bus.subscribe(q("only-series"), ["org.imarc.series.published"], on)
    await bus.publish([ev("org.imarc.instance.held"), ev("org.imarc.series.published")])
    # a queue delivers in order: had the first been routed here, it would come first
    await eventually(lambda: any(e.type == "org.imarc.series.published" for e in got))
    assert [e.type for e in got] == ["org.imarc.series.published"]


async def test_failing_handler_is_retried_then_succeeds(bus: Bus) -> None:
    calls: list[int] = []

    async def flaky(e: Event) -> None:
        calls.append(1)
        if len(calls) < 2:
            raise RuntimeError("transient")

    queue = q("flaky")
    await bus.subscribe(queue, ["org.imarc.#"], flaky)
    await bus.publish([ev()])
    await eventually(lambda: len(calls) == 2)
    await idle(bus, queue)
    assert len(calls) == 2
    assert await bus.dead_letters(queue) == []


async def test_handler_that_keeps_failing_goes_to_the_dead_letter_queue(bus: Bus) -> None:
    calls: list[int] = []

    async def broken(e: Event) -> None:
        calls.append(1)
        raise ValueError("cannot handle this")

    queue = q("broken")
    await bus.subscribe(queue, ["org.imarc.#"], broken)
    sent = ev(marker="x")
    await bus.publish([sent])
    await eventually(lambda: len(calls) >= 3)
    dead: list = []

    async def dlq_has_it() -> bool:
        dead[:] = await bus.dead_letters(queue)
        return len(dead) == 1

    for _ in range(200):
        if await dlq_has_it():
            break
        await asyncio.sleep(0.05)
    assert len(dead) == 1, "the message should be dead-lettered after the retry bound"
    assert dead[0].event.id == sent.id
    assert dead[0].attempts == 3
    assert "cannot handle this" in dead[0].error
    await idle(bus, queue)
    assert len(calls) == 3, "no delivery after the retry bound"


async def test_a_dead_letter_replayed_is_delivered_again_and_a_dropped_one_is_gone(
    durable_bus: Any,
) -> None:
    bus = durable_bus
    failing = {"yes": True}
    delivered: list[str] = []

    async def until_fixed(e: Event) -> None:
        if failing["yes"]:
            raise ValueError("not yet")
        delivered.append(e.id)

    queue = q("replay")
    await bus.subscribe(queue, ["org.imarc.#"], until_fixed)
    first, second = ev(marker="1"), ev(marker="2")
    await bus.publish([first, second])
    dead: list = []

    async def both_dead() -> bool:
        dead[:] = await bus.dead_letters(queue)
        return len(dead) == 2

    for _ in range(200):
        if await both_dead():
            break
        await asyncio.sleep(0.05)
    assert sorted(d.event.id for d in dead) == sorted([first.id, second.id])
    failing["yes"] = False
    assert await bus.replay_dead_letters(queue, [first.id]) == [first.id]
    await eventually(lambda: delivered == [first.id])
    assert await bus.drop_dead_letters(queue, [second.id]) == [second.id]
    assert await bus.dead_letters(queue) == []
    await idle(bus, queue)
    assert delivered == [first.id]


def test_topic_matching() -> None:
    assert topic_matches("org.imarc.#", "org.imarc.instance.received")
    assert topic_matches("org.imarc.*.received", "org.imarc.instance.received")
    assert not topic_matches("org.imarc.*", "org.imarc.instance.received")
    assert topic_matches("#", "a.b")
    assert not topic_matches("org.imarc.series.published", "org.imarc.series.withdrawn")


async def test_embedded_bus_keeps_messages_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite"
    first = EmbeddedBus(path)
    await first.start()

    async def never(e: Event) -> None:
        raise AssertionError("not yet")

    await first.subscribe("svc.durable", ["org.imarc.#"], never)
    await first.close()  # the consumer is gone; its queue and binding stay

    second = EmbeddedBus(path)
    await second.start()
    await second.publish([ev(n=1)])  # bound by the persisted binding, before any consumer
    assert await second.depth("svc.durable") == 1
    await second.close()

    third = EmbeddedBus(path)
    got: list[Event] = []

    async def on(e: Event) -> None:
        got.append(e)

    await third.subscribe("svc.durable", ["org.imarc.#"], on)
    await eventually(lambda: len(got) == 1)
    await third.close()
