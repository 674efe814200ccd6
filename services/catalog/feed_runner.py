"""Keeps the mirror feed numbered, and pushes numbered entries to the feed exchange.

The sequencer numbers committed entries a moment after their commit (readers also number
what is pending before they read). With a RabbitMQ bus, every numbered entry is then
published, with publisher confirms and in order, to the topic exchange
``<prefix>imarc.feed`` (routing key: the entry's type, e.g. ``series.published``); the
message id and the ``cursor`` header are the entry's cursor, so a mirror that binds its
own queue there can mix push and pull (a redelivered entry has the same cursor). The
pushed mark is kept in ``feed_head`` after each confirmed batch: push is at least once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from sqlalchemy import exists, select

from services.catalog import feed
from services.catalog.background import Background
from services.catalog.domain.feed import cursor
from services.catalog.models import feed as feed_table
from services.common.db import Database

log = logging.getLogger("imarc.catalog.feed")
FEED_EXCHANGE = "imarc.feed"


async def sequence_pending(db: Database) -> int:
    """Number pending entries, if there are any (a read when there are none)."""
    async with db.engine.connect() as conn:
        pending = await conn.scalar(select(exists().where(feed_table.c.position.is_(None))))
    return await feed.sequence(db) if pending else 0


class FeedRunner(Background):
    def __init__(self, db: Database, bus_url: str = "", prefix: str = "", idle: float = 0.25):
        self.db = db
        self.bus_url = bus_url
        self.exchange_name = prefix + FEED_EXCHANGE
        self.idle = idle
        self._conn: Any = None
        self._exchange: Any = None

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def run(self) -> None:
        while True:
            try:
                await sequence_pending(self.db)
                if self.bus_url:
                    await self.push()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database or broker is away: try again shortly
                log.warning("the feed could not be numbered or pushed; retrying", exc_info=True)
                await asyncio.sleep(2)
            await asyncio.sleep(self.idle)

    async def _channel_exchange(self) -> Any:
        if self._exchange is None:
            import aio_pika

            self._conn = await aio_pika.connect_robust(self.bus_url)
            channel = await self._conn.channel(publisher_confirms=True)
            self._exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
        return self._exchange

    async def push(self, batch: int = 500) -> int:
        """Publish the numbered entries not pushed yet; returns how many."""
        import aio_pika

        async with self.db.engine.connect() as conn:
            _, rows = await feed.unpushed(conn, batch)
        if not rows:
            return 0
        exchange = await self._channel_exchange()
        for position, entry in rows:
            c = cursor(position)
            body = json.dumps({"cursor": c, **entry}).encode()
            await exchange.publish(
                aio_pika.Message(
                    body,
                    content_type="application/json",
                    message_id=c,
                    headers={"cursor": c},
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=entry["type"],
            )
        await feed.mark_pushed(self.db, rows[-1][0])
        return len(rows)
