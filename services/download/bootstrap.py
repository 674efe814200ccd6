"""Wires the download service: its typed dependencies, tables, migrations, routes and
consumers."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.db import Database
from services.common.events import CollectionUpdated, SeriesPublished, SeriesWithdrawn
from services.common.messaging import Messaging, UnitOfWork
from services.common.service import Consumer, ServiceContext, ServiceSpec
from services.common.store import ObjectStore
from services.download import consumers as on
from services.download.models import metadata


@dataclass
class Download:
    """What download's use cases and routes work with."""

    db: Database
    messaging: Messaging
    store: ObjectStore
    #: CloudEvents ``source`` of the events download emits
    source: str
    #: where clients reach this site (IMARC_PUBLIC_URL), for links in answers; when
    #: empty, links are made from the request
    public_url: str = ""
    #: work that outlives a request (the log entry of a download cut short)
    background: set[asyncio.Task[None]] = field(default_factory=set)

    def uow(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A unit of work: state changes and the events emitted commit together."""
        return self.messaging.transaction()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` apart from the request (a cancelled stream cannot await)."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


def build(ctx: ServiceContext) -> Download:
    return Download(ctx.db, ctx.messaging, ctx.store, ctx.source, ctx.settings.public_url)


async def stop(download: Download) -> None:
    """Let the last log entries be written before the database closes."""
    await asyncio.gather(*download.background, return_exceptions=True)


def consumers(download: Download) -> Sequence[Consumer]:
    return (
        Consumer(
            "download.on_collection_updated",
            (CollectionUpdated.TYPE,),
            handler=on.on_collection_updated,
        ),
        Consumer(
            "download.on_series_published", (SeriesPublished.TYPE,), handler=on.on_series_published
        ),
        Consumer(
            "download.on_series_withdrawn", (SeriesWithdrawn.TYPE,), handler=on.on_series_withdrawn
        ),
    )


def spec() -> ServiceSpec[Download]:
    # the routes name ``Download`` (api/deps.py), so they are imported once it exists
    from services.download.api import (
        baskets,
        dicomweb,
        downloads,
        files,
        manifests,
        nbia,
        usage,
    )

    return ServiceSpec(
        name="download",
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        build=build,
        routers=(
            nbia.router,
            downloads.router,
            baskets.router,
            manifests.router,
            files.router,
            dicomweb.router,
            usage.router,
        ),
        consumers=consumers,
        on_stop=stop,
    )
