"""How a service plugs into a runtime.

Each service's ``bootstrap.py`` returns a ``ServiceSpec``: its tables, migrations, HTTP
routes and event consumers. The runtime (``imarc.runtime``) builds one ``ServiceContext``
per service — its own database and messaging, the shared bus, store and token verifier —
and wires it the same way in embedded and distributed mode.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.bus import Bus
from services.common.db import Database
from services.common.events import Event
from services.common.messaging import Messaging
from services.common.security import TokenVerifier
from services.common.settings import Settings
from services.common.store import ObjectStore


@dataclass
class ServiceContext:
    name: str
    settings: Settings
    db: Database
    bus: Bus
    store: ObjectStore
    messaging: Messaging
    verifier: TokenVerifier | None = None
    executor: Executor | None = None
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """CloudEvents ``source`` of this service's events."""
        return f"/{self.settings.site_name}/{self.name}"


EventHandler = Callable[[Event, AsyncSession], Awaitable[Sequence[Event]]]


@dataclass(frozen=True)
class Consumer:
    """A durable queue ``<service>.<handler>`` bound to event types.

    ``handler`` runs inside a transaction with inbox dedupe (exactly one effect);
    ``raw`` handlers manage their own idempotency (e.g. heavy work outside a transaction).
    """

    queue: str
    patterns: tuple[str, ...]
    handler: EventHandler | None = None
    raw: Callable[[Event], Awaitable[None]] | None = None
    concurrency: int = 1


@dataclass
class ServiceSpec:
    name: str
    metadata: MetaData
    migrations: Path
    router: Callable[[ServiceContext], APIRouter]
    consumers: Callable[[ServiceContext], Sequence[Consumer]] = lambda ctx: ()
    on_start: Callable[[ServiceContext], Awaitable[None]] | None = None
    on_stop: Callable[[ServiceContext], Awaitable[None]] | None = None
    # a pool of CPU worker processes (ctx.executor) for work that must leave the loop
    cpu_workers: bool = False
