"""Transactional outbox and idempotent inbox.

A service writes its events to its own ``outbox`` table in the same transaction as the
state change that caused them; ``OutboxRelay`` publishes them afterwards (in order) and
marks them sent only once the bus has confirmed them. A consumer records each event id in
its ``inbox`` in the same transaction as the event's effect, so a redelivered event has
exactly one effect.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.accounting import EVENT_BYTES, OWNER
from services.common.bus import Bus, Encoded
from services.common.db import Database, conflict_insert
from services.common.events import Event

log = logging.getLogger("imarc.messaging")
T = TypeVar("T")

# SQLite only autoincrements an INTEGER PRIMARY KEY.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")


class EncodedJSON(TypeDecorator[str]):
    """A JSON column bound from JSON text the caller encoded: an event is serialised once,
    by its own model, and stored and sent as those bytes."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Any) -> None:
        return None


def messaging_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Add the ``outbox`` and ``inbox`` tables to a service's metadata."""
    outbox = Table(
        "outbox",
        metadata,
        Column("seq", _SEQ, primary_key=True, autoincrement=True),
        Column("id", String(64), nullable=False, unique=True),
        Column("type", String(200), nullable=False),
        Column("body", EncodedJSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True, index=True),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(200), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    return outbox, inbox


class Messaging:
    """One service's outbox, inbox and relay over its database and the shared bus."""

    MAX_GROUP = 64

    def __init__(
        self,
        db: Database,
        bus: Bus,
        metadata: MetaData,
        *,
        service: str,
        on_published: Callable[[int], None] | None = None,
        outbox_retention: timedelta = timedelta(days=1),
        inbox_retention: timedelta = timedelta(days=14),
    ) -> None:
        self.db = db
        self.outbox_retention = outbox_retention
        self.inbox_retention = inbox_retention
        self._pruned_at = float("-inf")
        self.bus = bus
        self.service = service
        self.outbox = metadata.tables["outbox"]
        self.inbox = metadata.tables["inbox"]
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pending: list[_Pending] = []
        self._inbox_stmt: Any = None
        self._seen_stmt: Any = None
        self._committer: asyncio.Task[None] | None = None
        self._on_published = on_published
        self._event_bytes = EVENT_BYTES.labels(service)
        #: batches handed off to the embedded bus, oldest first: (done, their seqs)
        self._handed: deque[tuple[asyncio.Future[None], list[int]]] = deque()
        self._after = 0

    # -- producing ---------------------------------------------------------------

    async def emit(self, session: AsyncSession, events: Sequence[Event]) -> None:
        """Stage events in the outbox; they are sent when the session's transaction commits."""
        if not events:
            return
        now = datetime.now(UTC)
        bodies = [e.model_dump_json() for e in events]
        self._event_bytes.inc(sum(map(len, bodies)))
        rows = [
            {"id": e.id, "type": e.type, "body": body, "created_at": now}
            for e, body in zip(events, bodies, strict=True)
        ]
        await session.execute(insert(self.outbox), rows)

    def notify(self) -> None:
        """Wake the relay (call after a commit that emitted events)."""
        self._wake.set()

    async def _unsent(self, limit: int, after: int = 0) -> list[Any]:
        async with self.db.session() as s:
            return list(
                (
                    await s.execute(
                        select(
                            self.outbox.c.seq,
                            self.outbox.c.id,
                            self.outbox.c.type,
                            # the JSON as stored, not decoded: it is sent on as it is
                            cast(self.outbox.c.body, Text).label("text"),
                        )
                        .where(self.outbox.c.published_at.is_(None), self.outbox.c.seq > after)
                        .order_by(self.outbox.c.seq)
                        .limit(limit)
                    )
                ).all()
            )

    async def _mark_sent(self, seqs: Sequence[int]) -> None:
        async with self.db.session() as s, s.begin():
            await s.execute(
                update(self.outbox)
                .where(self.outbox.c.seq.in_(seqs))
                .values(published_at=datetime.now(UTC))
            )
        if self._on_published:
            self._on_published(len(seqs))

    @staticmethod
    def _encoded(rows: Sequence[Any]) -> list[Encoded]:
        # the stored JSON goes out as it is: it was validated when the event was made
        return [Encoded(r.type, r.id, r.text.encode()) for r in rows]

    async def relay_once(self, limit: int = 500) -> int:
        """Publish the oldest unsent events and mark them sent; returns how many."""
        rows = await self._unsent(limit)
        if not rows:
            return 0
        handoff = getattr(self.bus, "handoff", None)
        if handoff is not None:
            await handoff(self._encoded(rows))
        else:
            await self.bus.publish_encoded(self._encoded(rows))
        await self._mark_sent([r.seq for r in rows])
        return len(rows)

    async def _relay_handed(self, limit: int = 500, inflight: int = 2000) -> int:
        """The embedded bus's way: hand events off without waiting for their consumers,
        and mark each batch sent once every consumer is done with it. At most
        ``inflight`` events are out at once (memory stays bounded)."""
        finished: list[int] = []  # marked sent together, in one statement
        while self._handed and (
            self._handed[0][0].done() or sum(len(b[1]) for b in self._handed) >= inflight
        ):
            done, seqs = self._handed.popleft()
            try:
                await done
            except Exception:
                # not delivered everywhere: hand everything unmarked off again (the
                # consumers' inboxes absorb the copies)
                log.exception("delivery from the outbox of %s failed; resending", self.service)
                self._handed.clear()
                self._after = 0
                if finished:  # these were done with
                    await self._mark_sent(finished)
                return 0
            finished += seqs
        if finished:
            await self._mark_sent(finished)
        rows = await self._unsent(limit, after=self._after)
        if not rows:
            return 0
        self._after = rows[-1].seq
        self._handed.append((self.bus.handoff(self._encoded(rows)), [r.seq for r in rows]))  # type: ignore[attr-defined]
        return len(rows)

    async def pending(self) -> int:
        async with self.db.session() as s:
            n = await s.scalar(
                select(func.count())
                .select_from(self.outbox)
                .where(self.outbox.c.published_at.is_(None))
            )
        return int(n or 0)

    async def prune(self, now: datetime | None = None) -> tuple[int, int]:
        """Delete outbox rows published longer than ``outbox_retention`` ago and inbox
        records older than ``inbox_retention`` (a redelivery older than that is not
        expected); unpublished events are never deleted. Returns (outbox, inbox) counts."""
        now = now or datetime.now(UTC)
        async with self.db.session() as s, s.begin():
            out = await s.execute(
                delete(self.outbox).where(
                    self.outbox.c.published_at.is_not(None),
                    self.outbox.c.published_at < now - self.outbox_retention,
                )
            )
            inb = await s.execute(
                delete(self.inbox).where(self.inbox.c.processed_at < now - self.inbox_retention)
            )
        return int(out.rowcount or 0), int(inb.rowcount or 0)  # type: ignore[attr-defined]

    async def _prune_now_and_then(self, every: float = 600.0) -> None:
        if time.monotonic() - self._pruned_at < every:
            return
        self._pruned_at = time.monotonic()
        try:
            await self.prune()
        except Exception:  # pruning is housekeeping: the relay goes on
            log.warning("pruning the outbox of %s failed", self.service, exc_info=True)

    async def run_relay(self, idle: float = 1.0, limit: int = 500) -> None:
        OWNER.set(self.service)
        handing = hasattr(self.bus, "handoff")
        self._handed.clear()
        self._after = 0
        while True:
            await self._prune_now_and_then()
            self._wake.clear()
            try:
                sent = await (self._relay_handed(limit) if handing else self.relay_once(limit))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay of %s failed; retrying", self.service)
                await asyncio.sleep(idle)
                continue
            if sent >= limit:  # more may be waiting; fewer means the outbox was drained
                continue  # (a commit since the wake was cleared sets it again)
            waits: list[Any] = [asyncio.ensure_future(self._wake.wait())]
            if self._handed:  # or until the oldest handed-off batch is done with
                waits.append(self._handed[0][0])
            await asyncio.wait(waits, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
            waits[0].cancel()

    def start_relay(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run_relay(), name=f"{self.service}-relay")

    async def stop_relay(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- consuming ---------------------------------------------------------------

    async def _record_inbox(self, s: AsyncSession, consumer: str, event_id: str) -> bool:
        """Record the event as processed; False if it already was."""
        if self._inbox_stmt is None:
            dialect = "sqlite" if self.db.is_sqlite else "postgresql"
            self._inbox_stmt = conflict_insert(dialect, self.inbox).on_conflict_do_nothing()
        result = await s.execute(
            self._inbox_stmt,
            {"consumer": consumer, "event_id": event_id, "processed_at": datetime.now(UTC)},
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _record_inbox_many(
        self, s: AsyncSession, keys: Sequence[tuple[str, str]]
    ) -> list[bool]:
        """Record (consumer, event id) pairs as processed in one statement; for each pair,
        whether it is new (False if it was already processed, or repeats an earlier pair
        of ``keys``)."""
        if len(keys) == 1:
            return [await self._record_inbox(s, *keys[0])]
        dialect = "sqlite" if self.db.is_sqlite else "postgresql"
        now = datetime.now(UTC)
        unique = list(dict.fromkeys(keys))
        stmt = (
            conflict_insert(dialect, self.inbox)
            .values([{"consumer": c, "event_id": e, "processed_at": now} for c, e in unique])
            .on_conflict_do_nothing()
            .returning(self.inbox.c.consumer, self.inbox.c.event_id)
        )
        inserted = {(r[0], r[1]) for r in await s.execute(stmt)}
        out = []
        for key in keys:
            out.append(key in inserted)
            inserted.discard(key)  # a repeat in the same batch is a duplicate
        return out

    async def seen(self, consumer: str, event_id: str) -> bool:
        if self._seen_stmt is None:
            self._seen_stmt = select(self.inbox.c.event_id).where(
                self.inbox.c.consumer == bindparam("consumer"),
                self.inbox.c.event_id == bindparam("event_id"),
            )
        async with self.db.session() as s:
            row = await s.scalar(self._seen_stmt, {"consumer": consumer, "event_id": event_id})
        return row is not None

    async def apply_once(
        self,
        consumer: str,
        event: Event,
        effect: Callable[[UnitOfWork], Awaitable[Sequence[Event] | None]],
    ) -> bool:
        """Run ``effect`` and stage the events it returns, once per (consumer, event id).

        Returns False when the event had already been processed (nothing is done).

        Concurrent calls are group-committed: the effects waiting at one moment run one
        after another in a single transaction, so a busy consumer pays for one commit per
        batch rather than per event. If any effect of a batch fails, the batch is rolled
        back and each effect is run again in its own transaction, so one bad event fails
        alone and the others still take effect exactly once.
        """
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(consumer, event, effect, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_pending())
        return await future

    async def _commit_pending(self) -> None:
        while self._pending:
            batch = self._pending[: self.MAX_GROUP]
            del self._pending[: self.MAX_GROUP]
            try:
                results = await self._apply(batch)
            except Exception:
                if len(batch) == 1:
                    results = None
                    self._settle(batch[0], error=sys.exc_info()[1])
                else:
                    for item in batch:
                        try:
                            (ok,) = await self._apply([item])
                        except Exception as e:
                            self._settle(item, error=e)
                        else:
                            self._settle(item, ok)
                    continue
            for item, ok in zip(batch, results or (), strict=False):
                self._settle(item, ok)

    @staticmethod
    def _settle(item: _Pending, ok: bool = False, error: BaseException | None = None) -> None:
        if item.future.done():
            return
        if error is not None:
            item.future.set_exception(error)
        else:
            item.future.set_result(ok)

    async def _apply(self, batch: list[_Pending]) -> list[bool]:
        """One transaction for the batch: its inbox records in one statement, each new
        event's effect, then every event the effects emitted, in order, in one insert."""
        results: list[bool] = []
        staged: list[Event] = []
        async with self.db.session() as s, s.begin():
            fresh = await self._record_inbox_many(s, [(i.consumer, i.event.id) for i in batch])
            for item, new in zip(batch, fresh, strict=True):
                results.append(new)
                if not new:
                    continue
                uow = UnitOfWork(s)
                out = await item.effect(uow)
                staged += uow.events
                staged += out or ()
            await self.emit(s, staged)
        if staged:
            self.notify()
        return results

    def idempotent(
        self,
        consumer: str,
        handler: Callable[[Event, UnitOfWork], Awaitable[Sequence[Event] | None]],
    ) -> Callable[[Event], Awaitable[None]]:
        """Wrap ``handler(event, uow) -> events`` as a bus handler with inbox dedupe."""

        async def handle(event: Event) -> None:
            await self.apply_once(consumer, event, lambda uow: handler(event, uow))

        return handle

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """A request-side unit of work: state change and its events commit together."""
        async with self.db.session() as s, s.begin():
            uow = UnitOfWork(s)
            yield uow
            await self.emit(s, uow.events)
        if uow.events:
            self.notify()


@dataclass
class _Pending:
    consumer: str
    event: Event
    effect: Callable[[UnitOfWork], Awaitable[Sequence[Event] | None]]
    future: asyncio.Future[bool]


class UnitOfWork:
    """One transaction of a service: its ``session`` and the events it ``emit``s, which
    are staged in the outbox in the same transaction (cosmicpython's unit of work)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.events: list[Event] = []

    def emit(self, *events: Event) -> None:
        self.events.extend(events)


#: the former name of :class:`UnitOfWork`
Transaction = UnitOfWork
