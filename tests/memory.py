"""Services in-process on the synchronous in-memory bus, for fast service tests.

``in_memory()`` wires the named services the way the runtime does (each its own SQLite
database, migrated; a filesystem store; tokens from ``mint()``), but on ``InMemoryBus``:
``await bus.publish([...])`` returns once every consumer has committed its effect, and
``await settle()`` relays what the services emitted, so a test asserts straight away
instead of polling. The real buses are covered by tests/common and tests/e2e.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from imarc.runtime import load_spec
from services.common.app import create_app, provide
from services.common.db import Database
from services.common.events import Event
from services.common.memory_bus import InMemoryBus
from services.common.messaging import Messaging
from services.common.security import StaticKeys, TokenVerifier
from services.common.service import ServiceContext
from services.common.store import FilesystemStore
from tests.harness import free_port, make_settings, static_jwks


@dataclass
class InMemory:
    bus: InMemoryBus
    store: FilesystemStore
    client: httpx.AsyncClient
    contexts: dict[str, ServiceContext]
    deps: dict[str, Any]
    app: FastAPI

    async def publish(self, *events: Event) -> None:
        """Deliver ``events`` to every consumer, and what those emit in turn."""
        await self.bus.publish(events)
        await self.settle()

    async def settle(self) -> None:
        await relay_all(self.contexts.values())

    async def emitted(self, service: str) -> list[Event]:
        """Every event ``service`` has staged in its outbox, oldest first."""
        m = self.contexts[service].messaging
        async with m.db.session() as s:
            rows = (await s.execute(m.outbox.select().order_by(m.outbox.c.seq))).all()
        return [Event.model_validate(r.body) for r in rows]


async def relay_all(contexts: Iterable[ServiceContext]) -> None:
    """Relay every event the services emitted until none is left (each relayed event is
    handled before the relay returns, and may emit more)."""
    while sum([await c.messaging.relay_once() for c in contexts]):
        pass


@asynccontextmanager
async def in_memory(tmp_path: Path, services: Sequence[str]) -> AsyncIterator[InMemory]:
    settings = make_settings(tmp_path)
    bus = InMemoryBus(max_attempts=settings.bus_max_attempts)
    store = FilesystemStore(tmp_path / "objects", fsync=False)
    await store.ensure_zones()
    verifier = TokenVerifier(
        StaticKeys(static_jwks), issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    app = create_app("imarc (in memory)")
    app.state.verifier = verifier
    app.state.is_revoked = None  # tokens come from mint()
    contexts: dict[str, ServiceContext] = {}
    deps: dict[str, Any] = {}
    specs = [load_spec(name) for name in services]
    for spec in specs:
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/{spec.name}.sqlite", spec.name)
        await db.migrate(spec.migrations)
        messaging = Messaging(db, bus, spec.metadata, service=spec.name)
        ctx = ServiceContext(spec.name, settings, db, bus, store, messaging, verifier)
        contexts[spec.name] = ctx
        deps[spec.name] = spec.build(ctx) if spec.build is not None else ctx
        provide(app, deps[spec.name])
        for router in spec.routers:
            app.include_router(router)
    for spec in specs:
        if spec.on_start:
            await spec.on_start(deps[spec.name])
        for consumer in spec.consumers(deps[spec.name]):
            assert consumer.handler is not None, "raw consumers need the real runtime"
            handler = contexts[spec.name].messaging.idempotent(consumer.queue, consumer.handler)
            await bus.subscribe(consumer.queue, consumer.patterns, handler)

    async def settle(_: httpx.Response) -> None:
        await relay_all(contexts.values())  # what a request emitted is handled before it returns

    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://imarc.test",
        event_hooks={"response": [settle]},
    )
    try:
        async with client:
            yield InMemory(bus, store, client, contexts, deps, app)
    finally:
        for spec in specs:
            if spec.on_stop:
                await spec.on_stop(deps[spec.name])
        for ctx in contexts.values():
            await ctx.db.dispose()


@asynccontextmanager
async def over_http(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port of this event loop, for
    clients that speak HTTP themselves (the CLI, dicomweb-client, tcia_utils) from a
    worker thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
