"""The event bus: at-least-once delivery to one durable queue per consumer.

Implementations of one contract (tests/common/test_bus_contract.py runs the same suite
against each):

* ``RabbitBus`` (services/common/rabbit_bus.py) — RabbitMQ through aio-pika: a topic
  exchange, durable queues, persistent messages, publisher confirms, bounded retries with
  backoff through a per-queue retry queue, and a dead-letter queue ``<queue>.dlq``.
* ``EmbeddedBus`` (services/common/embedded_bus.py) — the same semantics in one process,
  kept durable in a SQLite file; outbox events are delivered from memory (``handoff``).
* ``InMemoryBus`` (services/common/memory_bus.py) — synchronous, not durable: for tests.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from services.common.events import Event

log = logging.getLogger("imarc.bus")

Handler = Callable[[Event], Awaitable[None]]
EXCHANGE = "imarc.events"


@dataclass(frozen=True)
class Encoded:
    """An event already serialised (the outbox relay sends the stored JSON as it is)."""

    type: str
    id: str
    body: bytes

    @classmethod
    def of(cls, event: Event) -> Encoded:
        return cls(event.type, event.id, event.to_bytes())


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    event: Event
    attempts: int
    error: str


@dataclass(frozen=True)
class DeadLetterAudit:
    """An operator's replay or drop of dead letters (``imarc dlq``)."""

    at: str
    by: str
    action: str
    queue: str
    event_ids: list[str]
    why: str

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> DeadLetterAudit:
        at = datetime.fromtimestamp(float(r["at"]), UTC).isoformat(timespec="seconds")
        ids = r["event_ids"]
        return cls(
            at,
            r["by"],
            r["action"],
            r["queue"],
            ids.split() if isinstance(ids, str) else list(ids),
            r["why"],
        )


class Bus(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def publish(self, events: Sequence[Event]) -> None: ...
    async def publish_encoded(self, messages: Sequence[Encoded]) -> None: ...
    async def subscribe(
        self, queue: str, patterns: Sequence[str], handler: Handler, *, concurrency: int = 1
    ) -> None: ...
    async def ping(self) -> None: ...
    async def dead_letters(self, queue: str) -> list[DeadLetter]: ...
    async def depth(self, queue: str) -> int: ...


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more."""
    return _match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


@lru_cache(maxsize=1024)
def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


def backoff(base: float, attempt: int, cap: float = 60.0) -> float:
    return float(min(cap, base * (2 ** max(0, attempt - 1))))
