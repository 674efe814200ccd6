"""A synchronous in-memory bus for tests of handlers and use cases.

``publish`` delivers each message to every bound queue's handler before it returns, in
order, retrying a failing handler up to ``max_attempts`` times and then dead-lettering
it — the same contract as ``EmbeddedBus`` and ``RabbitBus`` (tests/common/
test_bus_contract.py runs one suite against all three), without threads, files, timers
or polling, so a test can publish and assert at once. Nothing is durable: it is for tests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from services.common.bus import DeadLetter, Encoded, Handler, topic_matches
from services.common.events import Event

log = logging.getLogger("imarc.bus")


class InMemoryBus:
    def __init__(self, *, max_attempts: int = 5) -> None:
        self.max_attempts = max_attempts
        self._queues: dict[str, tuple[list[str], Handler | None]] = {}
        self._backlog: dict[str, list[bytes]] = {}
        self._dead: dict[str, list[DeadLetter]] = {}
        self.delivered = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def publish(self, events: Sequence[Event]) -> None:
        await self.publish_encoded([Encoded.of(e) for e in events])

    async def publish_encoded(self, messages: Sequence[Encoded]) -> None:
        for msg in messages:
            for queue, (patterns, handler) in list(self._queues.items()):
                if not any(topic_matches(p, msg.type) for p in patterns):
                    continue
                if handler is None:
                    self._backlog.setdefault(queue, []).append(msg.body)
                else:
                    await self._deliver(queue, handler, msg.body)

    async def _deliver(self, queue: str, handler: Handler, body: bytes) -> None:
        event = Event.from_bytes(body)
        error: Exception | None = None
        for _ in range(self.max_attempts):
            try:
                await handler(event)
            except Exception as e:  # retried, then dead-lettered, as on the real buses
                log.warning("handler for %s failed: %r", queue, e)
                error = e
                continue
            self.delivered += 1
            return
        self._dead.setdefault(queue, []).append(
            DeadLetter(queue, event, self.max_attempts, repr(error))
        )

    async def subscribe(
        self, queue: str, patterns: Sequence[str], handler: Handler, *, concurrency: int = 1
    ) -> None:
        known = self._queues.get(queue, ([], None))[0]
        self._queues[queue] = ([*known, *(p for p in patterns if p not in known)], handler)
        for body in self._backlog.pop(queue, []):
            await self._deliver(queue, handler, body)

    async def dead_letters(self, queue: str) -> list[DeadLetter]:
        return list(self._dead.get(queue, []))

    async def depth(self, queue: str) -> int:
        return len(self._backlog.get(queue, []))
