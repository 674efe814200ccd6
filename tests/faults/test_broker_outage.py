"""A delivery whose channel is lost before its acknowledgement (a broker outage) is left to
the broker to redeliver, with a warning, not an unretrieved task error."""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid

import pytest

from services.common.events import Event
from services.common.rabbit_bus import RabbitBus

pytestmark = [pytest.mark.faults, pytest.mark.rabbitmq]


async def test_an_ack_on_a_lost_channel_is_handled_where_it_is_sent(
    rabbit_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    bus = RabbitBus(
        rabbit_url, max_attempts=3, retry_base=0.02, exchange=f"test.{uuid.uuid4().hex}"
    )
    await bus.start()
    queue = f"test.lost.{uuid.uuid4().hex[:8]}"
    handled = asyncio.Event()

    async def handler(event: Event) -> None:
        await bus._channels[0].close()  # the channel goes away while the handler works
        handled.set()

    try:
        await bus.subscribe(queue, ["org.imarc.#"], handler)
        await bus.publish([Event(source="/t", type="org.imarc.thing.happened")])
        await asyncio.wait_for(handled.wait(), 10)
        for _ in range(50):  # the delivery task ends, and is collected
            await asyncio.sleep(0.02)
            gc.collect()
            if "acknowledgement not sent" in caplog.text:
                break
        assert "acknowledgement not sent" in caplog.text
        assert "never retrieved" not in caplog.text
    finally:
        await bus.delete_queues(exchange=True)
        await bus.close()
