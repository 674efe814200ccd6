"""The RabbitMQ bus (aio-pika): a topic exchange, durable queues, persistent messages,
publisher confirms, bounded retries with backoff through a per-queue retry queue, and a
dead-letter queue ``<queue>.dlq`` (the contract of services/common/bus.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Collection, Sequence
from functools import partial
from typing import Any

from services.common.bus import (
    EXCHANGE,
    DeadLetter,
    DeadLetterAudit,
    Encoded,
    Handler,
    backoff,
)
from services.common.events import Event

log = logging.getLogger("imarc.bus")
AUDIT_QUEUE = "imarc.dlq.audit"


def _settled(queue: str, task: asyncio.Task[None]) -> None:
    """A delivery task's end: anything it raised is logged here, never left unretrieved."""
    if not task.cancelled() and task.exception() is not None:
        log.warning(
            "delivery on %s ended with %r; the broker redelivers it", queue, task.exception()
        )


def _resent(message: Any, headers: dict[str, Any], expiration: float | None = None) -> Any:
    """A persistent copy of a delivered ``message`` with new ``headers`` (a retry, a
    dead letter, a replay)."""
    import aio_pika  # only a deployment on RabbitMQ loads it

    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        message_id=message.message_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        expiration=expiration,
    )


class RabbitBus:
    """RabbitMQ through aio-pika (see module docstring)."""

    ATTEMPT_HEADER = "x-imarc-attempt"

    def __init__(
        self,
        url: str,
        *,
        max_attempts: int = 5,
        retry_base: float = 0.5,
        exchange: str = EXCHANGE,
        queue_prefix: str = "",
    ) -> None:
        self.url = url
        self.queue_prefix = queue_prefix
        self.declared: set[str] = set()
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.exchange_name = exchange
        self._conn: Any = None
        self._pub_channel: Any = None
        self._exchange: Any = None
        self._channels: list[Any] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._conn is not None:
            return
        import aio_pika

        self._conn = await aio_pika.connect_robust(self.url)
        self._pub_channel = await self._conn.channel(publisher_confirms=True)
        self._exchange = await self._pub_channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for channel in self._channels:
            if not channel.is_closed:
                await channel.close()
        self._channels.clear()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
            await asyncio.sleep(0.01)  # let aio-pika's close callbacks run on this loop

    async def ping(self) -> None:
        if self._conn is None or self._conn.is_closed:
            raise ConnectionError("not connected to RabbitMQ")

    async def publish(self, events: Sequence[Event]) -> None:
        await self.publish_encoded([Encoded.of(e) for e in events])

    async def publish_encoded(self, messages: Sequence[Encoded]) -> None:
        import aio_pika

        await self.start()
        await asyncio.gather(
            *(
                self._exchange.publish(
                    aio_pika.Message(
                        msg.body,
                        content_type="application/cloudevents+json",
                        message_id=msg.id,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=msg.type,
                )
                for msg in messages
            )
        )

    async def _declare(self, channel: Any, queue: str) -> Any:
        self.declared.update((queue, queue + ".dlq", queue + ".retry"))
        q = await channel.declare_queue(queue, durable=True)
        await channel.declare_queue(queue + ".dlq", durable=True)
        await channel.declare_queue(
            queue + ".retry",
            durable=True,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue},
        )
        return q

    async def subscribe(
        self, queue: str, patterns: Sequence[str], handler: Handler, *, concurrency: int = 1
    ) -> None:
        import aio_pika

        await self.start()
        queue = self.queue_prefix + queue
        channel = await self._conn.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=max(1, concurrency))
        self._channels.append(channel)
        exchange = await channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        q = await self._declare(channel, queue)
        for p in patterns:
            await q.bind(exchange, routing_key=p)

        async def process(message: Any) -> None:
            attempt = int((message.headers or {}).get(self.ATTEMPT_HEADER, 0)) + 1
            try:
                await handler(Event.from_bytes(message.body))
            except Exception as exc:
                log.warning("handler for %s failed (attempt %d): %r", queue, attempt, exc)
                headers = {
                    **(message.headers or {}),
                    self.ATTEMPT_HEADER: attempt,
                    "x-imarc-error": repr(exc)[:1000],
                }
                if attempt >= self.max_attempts:
                    target, expiration = queue + ".dlq", None
                else:
                    target, expiration = queue + ".retry", backoff(self.retry_base, attempt)
                try:
                    await channel.default_exchange.publish(
                        _resent(message, headers, expiration), routing_key=target
                    )
                except Exception as lost:  # the broker redelivers it (not acked)
                    log.warning("%s: could not schedule a retry: %r", queue, lost)
                    return
            await self._ack(queue, message)

        async def on_message(message: Any) -> None:
            # Run each delivery as its own task: prefetch bounds how many are in flight.
            task = asyncio.create_task(process(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(partial(_settled, queue))

        await q.consume(on_message)

    @staticmethod
    async def _ack(queue: str, message: Any) -> None:
        """Acknowledge a handled delivery. If the channel was lost meanwhile (a broker
        restart), the broker requeues the message by itself and redelivers it; the
        consumer's inbox makes that second delivery a no-op. Nothing to do but say so."""
        from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

        try:
            await message.ack()
        except (ChannelInvalidStateError, AMQPError, ConnectionError) as e:
            log.warning("%s: acknowledgement not sent (%r); the broker will redeliver", queue, e)

    async def dead_letters(self, queue: str) -> list[DeadLetter]:
        await self.start()
        channel = await self._conn.channel()
        try:
            q = await channel.declare_queue(self.queue_prefix + queue + ".dlq", durable=True)
            out: list[DeadLetter] = []
            held = []
            while True:
                msg = await q.get(no_ack=False, fail=False)
                if msg is None:
                    break
                held.append(msg)
                headers = msg.headers or {}
                out.append(
                    DeadLetter(
                        queue,
                        Event.from_bytes(msg.body),
                        int(headers.get(self.ATTEMPT_HEADER, 0)),
                        str(headers.get("x-imarc-error", "")),
                    )
                )
            for msg in held:
                await msg.nack(requeue=True)
            return out
        finally:
            await channel.close()

    async def delete_queues(self, queues: Sequence[str] = (), *, exchange: bool = False) -> None:
        """Delete queues (with their retry and dead-letter queues) and optionally the
        exchange: for tearing down a deployment's or a test's broker objects."""
        await self.start()
        names = set(self.declared)
        for q in queues:
            names.update(
                (
                    self.queue_prefix + q,
                    self.queue_prefix + q + ".dlq",
                    self.queue_prefix + q + ".retry",
                )
            )
        channel = await self._conn.channel()
        try:
            for name in sorted(names):
                await channel.queue_delete(name)
            if exchange:
                await channel.exchange_delete(self.exchange_name)
        finally:
            await channel.close()
        self.declared.clear()

    async def depth(self, queue: str) -> int:
        await self.start()
        channel = await self._conn.channel()
        try:
            q = await channel.declare_queue(self.queue_prefix + queue, durable=True, passive=True)
            return int(q.declaration_result.message_count)
        finally:
            await channel.close()

    async def dead_letter_counts(self, queues: Sequence[str]) -> dict[str, int]:
        return {q: await self.depth(q + ".dlq") for q in queues}

    async def _take_dead_letters(
        self, queue: str, ids: Collection[str] | None, replay: bool
    ) -> list[str]:

        await self.start()
        channel = await self._conn.channel(publisher_confirms=True)
        taken: list[str] = []
        kept = []
        try:
            dlq = await channel.declare_queue(self.queue_prefix + queue + ".dlq", durable=True)
            while True:
                msg = await dlq.get(no_ack=False, fail=False)
                if msg is None:
                    break
                event_id = Event.from_bytes(msg.body).id
                if ids is not None and event_id not in ids:
                    kept.append(msg)
                    continue
                if replay:  # a fresh round of attempts
                    headers = {
                        k: v
                        for k, v in (msg.headers or {}).items()
                        if k not in (self.ATTEMPT_HEADER, "x-imarc-error")
                    }
                    await channel.default_exchange.publish(
                        _resent(msg, headers), routing_key=self.queue_prefix + queue
                    )
                await msg.ack()
                taken.append(event_id)
            for msg in kept:
                await msg.nack(requeue=True)
        finally:
            await channel.close()
        return taken

    async def replay_dead_letters(self, queue: str, ids: Collection[str] | None) -> list[str]:
        return await self._take_dead_letters(queue, ids, replay=True)

    async def drop_dead_letters(self, queue: str, ids: Collection[str] | None) -> list[str]:
        return await self._take_dead_letters(queue, ids, replay=False)

    async def audit_dead_letters(
        self, action: str, queue: str, event_ids: Sequence[str], by: str, why: str
    ) -> None:
        import aio_pika

        await self.start()
        channel = await self._conn.channel(publisher_confirms=True)
        try:
            await channel.declare_queue(self.queue_prefix + AUDIT_QUEUE, durable=True)
            entry = {"at": time.time(), "by": by, "action": action, "queue": queue}
            body = json.dumps({**entry, "event_ids": list(event_ids), "why": why}).encode()
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=self.queue_prefix + AUDIT_QUEUE,
            )
        finally:
            await channel.close()

    async def dead_letter_history(self) -> list[DeadLetterAudit]:
        await self.start()
        channel = await self._conn.channel()
        out: list[DeadLetterAudit] = []
        try:
            q = await channel.declare_queue(self.queue_prefix + AUDIT_QUEUE, durable=True)
            held = []
            while True:
                msg = await q.get(no_ack=False, fail=False)
                if msg is None:
                    break
                held.append(msg)
                out.append(DeadLetterAudit.from_record(json.loads(msg.body)))
            for msg in held:
                await msg.nack(requeue=True)
        finally:
            await channel.close()
        return out
