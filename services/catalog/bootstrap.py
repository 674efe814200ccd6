"""Wires the catalog: its typed dependencies, tables, migrations, routes and consumers."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog import consumers as on
from services.catalog.feed_runner import FeedRunner
from services.catalog.mirror import Follower
from services.catalog.models import metadata
from services.common.db import Database
from services.common.events import CollectionUpdated, SeriesPublished, SeriesWithdrawn
from services.common.messaging import Messaging, UnitOfWork
from services.common.service import Consumer, ServiceContext, ServiceSpec


@dataclass
class Catalog:
    """What the catalog's routes work with."""

    db: Database
    messaging: Messaging
    #: CloudEvents ``source`` of the events the catalog emits
    source: str = "/catalog"
    #: origins whose browser pages may call the DICOMweb searches ("*": any)
    cors_origins: frozenset[str] = frozenset()
    #: a replica site reads the primary's replicated database and writes nothing
    replica: bool = False
    #: numbers the mirror feed and pushes it to the feed exchange (none on a replica)
    feed_runner: FeedRunner | None = None
    #: follows the sources of a mirror site (none on other sites)
    follower: Follower | None = None

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for the reads of one request (queries.py)."""
        return self.db.engine.connect()

    def uow(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A unit of work for a request that writes (sharing a cart)."""
        return self.messaging.transaction()


def build(ctx: ServiceContext) -> Catalog:
    settings = ctx.settings
    origins = (o.strip() for o in settings.dicomweb_cors_origins.split(","))
    replica = settings.site_role == "replica"
    runner = None if replica else FeedRunner(ctx.db, settings.bus_url, settings.bus_prefix)
    follower = None
    if settings.site_role == "mirror":
        follower = Follower(ctx.db, ctx.messaging, ctx.store, ctx.source)
    return Catalog(
        ctx.db,
        ctx.messaging,
        ctx.source,
        cors_origins=frozenset(o for o in origins if o),
        replica=replica,
        feed_runner=runner,
        follower=follower,
    )


async def start(catalog: Catalog) -> None:
    if catalog.feed_runner is not None:
        catalog.feed_runner.start()
    if catalog.follower is not None:
        catalog.follower.start()


async def stop(catalog: Catalog) -> None:
    if catalog.follower is not None:
        await catalog.follower.stop()
    if catalog.feed_runner is not None:
        await catalog.feed_runner.stop()


def consumers(catalog: Catalog) -> Sequence[Consumer]:
    return (
        Consumer(
            "catalog.on_series_published",
            (SeriesPublished.TYPE,),
            handler=partial(on.on_series_published, source=catalog.source),
        ),
        Consumer(
            "catalog.on_series_withdrawn", (SeriesWithdrawn.TYPE,), handler=on.on_series_withdrawn
        ),
        Consumer(
            "catalog.on_collection_updated",
            (CollectionUpdated.TYPE,),
            handler=on.on_collection_updated,
        ),
    )


def spec() -> ServiceSpec[Catalog]:
    # the routes name ``Catalog`` (api/deps.py), so they are imported once it exists
    from services.catalog.api import (
        carts,
        collections,
        dicomweb,
        feed,
        mirror,
        patients,
        search,
        series,
        v1,
        values,
    )

    return ServiceSpec(
        name="catalog",
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        build=build,
        routers=(
            collections.router,
            values.router,
            patients.router,
            series.router,
            search.router,
            carts.router,
            v1.router,
            dicomweb.router,
            feed.router,
            mirror.router,
        ),
        consumers=consumers,
        on_start=start,
        on_stop=stop,
    )
