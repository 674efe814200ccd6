"""How a service plugs into a runtime.

Each service's ``bootstrap.py`` returns a ``ServiceSpec``: its tables, migrations, HTTP
routers and event consumers, and ``build`` — the one function that turns the adapters the
runtime made (a ``ServiceContext``: database, messaging, bus, store, token verifier,
settings) into the service's own typed dependencies object (its ``Deps``). Routes receive
that object through :func:`services.common.app.provided`, consumers and start/stop hooks
are functions of it; nothing is looked up by string key.

The runtime (``imarc.runtime``) wires every spec the same way in embedded and distributed
mode; only the adapters differ.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from fastapi import APIRouter
from sqlalchemy import MetaData

from services.common.bus import Bus
from services.common.db import Database
from services.common.events import Event
from services.common.messaging import Messaging, UnitOfWork
from services.common.security import KeySource, TokenVerifier
from services.common.settings import Settings
from services.common.store import ObjectStore

D = TypeVar("D")


@dataclass
class ServiceContext:
    """The adapters a runtime gives one service."""

    name: str
    settings: Settings
    db: Database
    bus: Bus
    store: ObjectStore
    messaging: Messaging
    verifier: TokenVerifier | None = None
    executor: Executor | None = None

    @property
    def source(self) -> str:
        """CloudEvents ``source`` of this service's events."""
        return f"/{self.settings.site_name}/{self.name}"

    @asynccontextmanager
    async def uow(self) -> AsyncIterator[UnitOfWork]:
        """One unit of work: its state changes and the events it emits commit together."""
        async with self.messaging.transaction() as uow:
            yield uow


#: ``on_<event>(event, uow) -> events``: runs once per event id, in the unit of work that
#: records the event in the inbox; the returned events are staged in the outbox with it.
EventHandler = Callable[[Event, UnitOfWork], Awaitable[Sequence[Event] | None]]


@dataclass(frozen=True)
class Consumer:
    """A durable queue ``<service>.<handler>`` bound to event types.

    ``handler`` runs inside a unit of work with inbox dedupe (exactly one effect);
    ``raw`` handlers manage their own idempotency (e.g. heavy work outside a transaction).
    """

    queue: str
    patterns: tuple[str, ...]
    handler: EventHandler | None = None
    raw: Callable[[Event], Awaitable[None]] | None = None
    concurrency: int = 1


class RevocationCheck(Protocol):
    async def __call__(self, claims: Mapping[str, Any]) -> bool: ...


@dataclass(frozen=True)
class TokenPorts:
    """What a service that issues tokens (auth) offers the others in the same process:
    its public keys and its revocation list. Processes without it fetch both over HTTP."""

    keys: KeySource
    is_revoked: RevocationCheck


@dataclass
class ServiceSpec(Generic[D]):
    name: str
    metadata: MetaData
    migrations: Path
    #: the service's typed dependencies, made from the runtime's adapters (no I/O)
    build: Callable[[ServiceContext], D] | None = None
    routers: Sequence[APIRouter] = ()
    consumers: Callable[[D], Sequence[Consumer]] = lambda deps: ()
    on_start: Callable[[D], Awaitable[None]] | None = None
    on_stop: Callable[[D], Awaitable[None]] | None = None
    #: a pool of CPU worker processes (``ServiceContext.executor``) for work off the loop
    cpu_workers: bool = False
    #: the token ports this service offers the others (auth only)
    tokens: Callable[[D], TokenPorts] | None = None
