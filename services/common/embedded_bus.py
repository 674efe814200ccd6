"""The embedded bus: the bus contract (services/common/bus.py) in one process, kept durable
in a SQLite file so that a crash loses nothing: a published message is committed before
``publish`` returns, and is deleted only after its handler succeeded.

Events from a service's outbox take a shorter way (``handoff``): the outbox row already is
the durable copy, so the bus does not copy it into a second queue. It delivers the event
from memory to every consuming queue of this process and tells the relay when all of them
are done with it (handled, or dead-lettered after the bounded retries); only then is the
row marked sent. A crash before that leaves the row unsent, and the relay hands it off
again after the restart (each consumer's inbox keeps the effect single).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.bus import (
    DeadLetter,
    DeadLetterAudit,
    Encoded,
    Handler,
    backoff,
    topic_matches,
)
from services.common.db import private_sqlite
from services.common.events import Event

log = logging.getLogger("imarc.bus")


@dataclass
class _Handed:
    """One event handed off from an outbox, waiting for one queue's consumer."""

    event: Event
    body: bytes
    done: Callable[[], None]
    attempts: int = 0


_SCHEMA = """
CREATE TABLE IF NOT EXISTS bindings (queue TEXT NOT NULL, pattern TEXT NOT NULL,
  PRIMARY KEY (queue, pattern));
CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,
  body BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, available_at REAL NOT NULL,
  leased INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, leased, available_at, id);
CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL, body BLOB NOT NULL, attempts INTEGER NOT NULL, error TEXT NOT NULL,
  at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letter_audit (id INTEGER PRIMARY KEY AUTOINCREMENT,
  at REAL NOT NULL, by TEXT NOT NULL, action TEXT NOT NULL, queue TEXT NOT NULL,
  event_ids TEXT NOT NULL, why TEXT NOT NULL);
"""


class EmbeddedBus:
    """A durable in-process bus in one SQLite file (see module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        max_attempts: int = 5,
        retry_base: float = 0.5,
        poll: float = 1.0,
        owner: bool = True,
    ) -> None:
        """``owner``: this process runs the deployment's consumers (leases left by a previous
        process are released); an operator's tool opens the file with ``owner=False``."""
        self.path = path
        self.owner = owner
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.poll = poll
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-bus")
        self._db: sqlite3.Connection | None = None
        self._bindings: dict[str, list[str]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        #: events handed off from outboxes, per consuming queue of this process
        self._memory: dict[str, deque[_Handed]] = {}
        #: handed-off events not yet done with (waiting, in flight, or waiting to retry)
        self._outstanding: dict[str, int] = {}

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    def _open(self) -> None:
        private_sqlite(self.path)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=30000")  # an operator's `imarc dlq` may write too
        db.executescript(_SCHEMA)
        if self.owner:
            # Leases belong to the previous process: its unfinished work is redelivered.
            db.execute("UPDATE messages SET leased = 0 WHERE leased = 1")
        self._db = db
        for queue, pattern in db.execute("SELECT queue, pattern FROM bindings").fetchall():
            self._bindings.setdefault(queue, []).append(pattern)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the embedded bus is not started")
        return self._db

    async def start(self) -> None:
        if self._db is None:
            await self._run(self._open)

    async def close(self) -> None:
        self._closing = True
        for w in self._wake.values():
            w.set()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._db is not None:
            await self._run(self.db.close)
            self._db = None
        self._io.shutdown(wait=True)

    async def ping(self) -> None:
        await self._run(lambda: self.db.execute("SELECT 1").fetchone())

    def _insert(self, rows: list[tuple[str, bytes, float]]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO messages (queue, body, available_at) VALUES (?, ?, ?)", rows
            )

    async def publish(self, events: Sequence[Event]) -> None:
        await self.publish_encoded([Encoded.of(e) for e in events])

    async def publish_encoded(self, messages: Sequence[Encoded]) -> None:
        now = time.time()
        rows: list[tuple[str, bytes, float]] = []
        for msg in messages:
            for queue, patterns in self._bindings.items():
                if any(topic_matches(p, msg.type) for p in patterns):
                    rows.append((queue, msg.body, now))
        if rows:
            await self._run(self._insert, rows)
            for queue in {r[0] for r in rows}:
                if queue in self._wake:
                    self._wake[queue].set()

    def handoff(self, messages: Sequence[Encoded]) -> asyncio.Future[None]:
        """Deliver events that the caller keeps durable (an outbox) to every bound queue.

        Returns a future that completes once each queue's handler has succeeded or the
        event was dead-lettered; until then the caller must keep the events. A queue that
        is bound but has no consumer in this process gets a durable copy, as ``publish``
        would give it.
        """
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        waiting = 1  # released at the end of this call

        def one_done() -> None:
            nonlocal waiting
            waiting -= 1
            if waiting == 0 and not finished.done():
                finished.set_result(None)

        def queue_done(queue: str) -> Callable[[], None]:
            def done() -> None:
                self._outstanding[queue] -= 1
                one_done()

            return done

        def stored(task: asyncio.Future[None]) -> None:
            if task.cancelled() or task.exception() is not None:
                if not finished.done():
                    finished.set_exception(task.exception() or asyncio.CancelledError())
            else:
                one_done()

        durable: list[Encoded] = []
        woken: set[str] = set()
        for msg in messages:
            event: Event | None = None
            for queue, patterns in self._bindings.items():
                if not any(topic_matches(p, msg.type) for p in patterns):
                    continue
                memory = self._memory.get(queue)
                if memory is None:
                    if not durable or durable[-1] is not msg:
                        durable.append(msg)
                    continue
                event = event or Event.from_bytes(msg.body)
                waiting += 1
                self._outstanding[queue] = self._outstanding.get(queue, 0) + 1
                memory.append(_Handed(event, msg.body, queue_done(queue)))
                woken.add(queue)
        for queue in woken:
            self._wake[queue].set()
        if durable:
            waiting += 1
            asyncio.ensure_future(self._publish_to_idle(durable)).add_done_callback(stored)
        one_done()
        return finished

    async def _publish_to_idle(self, messages: Sequence[Encoded]) -> None:
        now = time.time()
        rows = [
            (queue, msg.body, now)
            for msg in messages
            for queue, patterns in self._bindings.items()
            if queue not in self._memory and any(topic_matches(p, msg.type) for p in patterns)
        ]
        if rows:
            await self._run(self._insert, rows)

    def _bind(self, queue: str, patterns: Sequence[str]) -> None:
        self.db.executemany(
            "INSERT OR IGNORE INTO bindings (queue, pattern) VALUES (?, ?)",
            [(queue, p) for p in patterns],
        )

    async def subscribe(
        self, queue: str, patterns: Sequence[str], handler: Handler, *, concurrency: int = 1
    ) -> None:
        await self.start()
        await self._run(self._bind, queue, list(patterns))
        known = self._bindings.setdefault(queue, [])
        known.extend(p for p in patterns if p not in known)
        self._wake[queue] = asyncio.Event()
        self._memory[queue] = deque()
        self._tasks.append(asyncio.create_task(self._consume(queue, handler, concurrency)))

    def _lease(self, queue: str, limit: int) -> list[tuple[int, bytes, int]]:
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            rows = self.db.execute(
                "SELECT id, body, attempts FROM messages WHERE queue = ? AND leased = 0 "
                "AND available_at <= ? ORDER BY id LIMIT ?",
                (queue, now, limit),
            ).fetchall()
            if rows:
                self.db.executemany(
                    "UPDATE messages SET leased = 1 WHERE id = ?", [(r[0],) for r in rows]
                )
        return rows

    def _next_due(self, queue: str) -> float | None:
        row = self.db.execute(
            "SELECT MIN(available_at) FROM messages WHERE queue = ? AND leased = 0", (queue,)
        ).fetchone()
        return row[0] if row and row[0] is not None else None

    def _ack(self, ids: list[int]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    def _fail(self, queue: str, msg_id: int, body: bytes, attempts: int, error: str) -> None:
        with self.db:
            self.db.execute("BEGIN")
            if attempts >= self.max_attempts:
                self.db.execute("DELETE FROM messages WHERE id = ?", (msg_id,))
                self.db.execute(
                    "INSERT INTO dead_letters (queue, body, attempts, error, at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (queue + ".dlq", body, attempts, error, time.time()),
                )
            else:
                self.db.execute(
                    "UPDATE messages SET leased = 0, attempts = ?, available_at = ? WHERE id = ?",
                    (attempts, time.time() + backoff(self.retry_base, attempts), msg_id),
                )

    async def _deliver(self, queue: str, handler: Handler, row: tuple[int, bytes, int]) -> None:
        msg_id, body, attempts = row
        try:
            await handler(Event.from_bytes(body))
        except Exception as exc:  # retried with backoff, then dead-lettered
            log.warning("handler for %s failed: %r", queue, exc, exc_info=True)
            await self._run(self._fail, queue, msg_id, body, attempts + 1, repr(exc))
        else:
            await self._run(self._ack, [msg_id])

    async def _deliver_handed(self, queue: str, handler: Handler, item: _Handed) -> None:
        try:
            await handler(item.event)
        except Exception as exc:  # retried with backoff, then dead-lettered
            item.attempts += 1
            log.warning("handler for %s failed: %r", queue, exc, exc_info=True)
            if item.attempts >= self.max_attempts:
                await self._run(self._dead_letter, queue, item.body, item.attempts, repr(exc))
                item.done()
                return

            def again() -> None:
                self._memory[queue].append(item)
                self._wake[queue].set()

            asyncio.get_running_loop().call_later(backoff(self.retry_base, item.attempts), again)
        else:
            item.done()

    def _dead_letter(self, queue: str, body: bytes, attempts: int, error: str) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT INTO dead_letters (queue, body, attempts, error, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (queue + ".dlq", body, attempts, error, time.time()),
            )

    async def _consume(self, queue: str, handler: Handler, concurrency: int) -> None:
        """Keep up to ``concurrency`` deliveries in flight, leasing more as each finishes."""
        wake = self._wake[queue]
        limit = max(1, concurrency)
        inflight: set[asyncio.Task[None]] = set()
        try:
            while not self._closing:
                wake.clear()
                if len(inflight) >= limit:
                    await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                memory = self._memory[queue]
                if memory:
                    while memory and len(inflight) < limit:
                        task = asyncio.create_task(
                            self._deliver_handed(queue, handler, memory.popleft())
                        )
                        inflight.add(task)
                        task.add_done_callback(inflight.discard)
                    continue
                batch = await self._run(self._lease, queue, limit - len(inflight))
                for row in batch:
                    task = asyncio.create_task(self._deliver(queue, handler, row))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                if batch:
                    continue
                due = await self._run(self._next_due, queue)
                timeout = self.poll if due is None else max(0.01, min(self.poll, due - time.time()))
                waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(wake.wait()), *inflight}
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters - set(inflight):
                    w.cancel()
        finally:
            for task in inflight:
                task.cancel()

    async def dead_letters(self, queue: str) -> list[DeadLetter]:
        rows = await self._run(
            lambda: self.db.execute(
                "SELECT body, attempts, error FROM dead_letters WHERE queue = ? ORDER BY id",
                (queue + ".dlq",),
            ).fetchall()
        )
        return [DeadLetter(queue, Event.from_bytes(b), a, e) for b, a, e in rows]

    async def depth(self, queue: str) -> int:
        row = await self._run(
            lambda: self.db.execute(
                "SELECT COUNT(*) FROM messages WHERE queue = ?", (queue,)
            ).fetchone()
        )
        return int(row[0]) + self._outstanding.get(queue, 0)

    # -- operating on dead letters (imarc dlq) -------------------------------------------

    async def dead_letter_counts(self, queues: Sequence[str]) -> dict[str, int]:
        rows = await self._run(
            lambda: self.db.execute(
                "SELECT queue, COUNT(*) FROM dead_letters GROUP BY queue"
            ).fetchall()
        )
        counts = {q.removesuffix(".dlq"): int(n) for q, n in rows}
        return {q: counts.get(q, 0) for q in queues}

    def _take_dead(self, queue: str, ids: Collection[str] | None, replay: bool) -> list[str]:
        taken: list[str] = []
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            rows = self.db.execute(
                "SELECT id, body FROM dead_letters WHERE queue = ? ORDER BY id", (queue + ".dlq",)
            ).fetchall()
            for row_id, body in rows:
                event_id = Event.from_bytes(body).id
                if ids is not None and event_id not in ids:
                    continue
                if replay:  # a fresh round of attempts, from the durable queue
                    self.db.execute(
                        "INSERT INTO messages (queue, body, available_at) VALUES (?, ?, ?)",
                        (queue, body, time.time()),
                    )
                self.db.execute("DELETE FROM dead_letters WHERE id = ?", (row_id,))
                taken.append(event_id)
        return taken

    async def replay_dead_letters(self, queue: str, ids: Collection[str] | None) -> list[str]:
        taken: list[str] = await self._run(self._take_dead, queue, ids, True)
        if queue in self._wake:
            self._wake[queue].set()
        return taken

    async def drop_dead_letters(self, queue: str, ids: Collection[str] | None) -> list[str]:
        taken: list[str] = await self._run(self._take_dead, queue, ids, False)
        return taken

    async def audit_dead_letters(
        self, action: str, queue: str, event_ids: Sequence[str], by: str, why: str
    ) -> None:
        def write() -> None:
            with self.db:
                self.db.execute(
                    "INSERT INTO dead_letter_audit (at, by, action, queue, event_ids, why) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (time.time(), by, action, queue, " ".join(event_ids), why),
                )

        await self._run(write)

    async def dead_letter_history(self) -> list[DeadLetterAudit]:
        rows = await self._run(
            lambda: self.db.execute(
                "SELECT at, by, action, queue, event_ids, why FROM dead_letter_audit ORDER BY id"
            ).fetchall()
        )
        keys = ("at", "by", "action", "queue", "event_ids", "why")
        return [DeadLetterAudit.from_record(dict(zip(keys, r, strict=True))) for r in rows]
