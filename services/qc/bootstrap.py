"""Wires the qc service: its typed dependencies, tables, migrations, routes and consumers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

from services.common.db import Database
from services.common.events import (
    CollectionUpdated,
    InstanceDeidentified,
    InstanceHeld,
    InstanceReceived,
    SeriesIndexed,
)
from services.common.housekeeping import repeat, stop
from services.common.messaging import Messaging, UnitOfWork
from services.common.service import Consumer, ServiceContext, ServiceSpec
from services.common.store import ObjectStore
from services.qc import consumers as on
from services.qc.inventory import load_standard
from services.qc.models import metadata
from services.qc.service import inventory
from services.qc.service.images import RenderCache

log = logging.getLogger("imarc.qc")

# Per-instance events are independent (the newest event time decides an instance's stage),
# so many are taken at once and group-committed by the messaging layer.
PER_INSTANCE_CONCURRENCY = 32


@dataclass
class Qc:
    """What qc's use cases and routes work with."""

    db: Database
    messaging: Messaging
    store: ObjectStore
    #: CloudEvents ``source`` of the events qc emits
    source: str
    #: rendered slices shown to curators
    renders: RenderCache = field(default_factory=RenderCache)
    #: a read replica builds nothing (the primary's inventories arrive by replication)
    replica: bool = False
    _builder: asyncio.Task[None] | None = None

    def uow(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A unit of work: state changes and the events emitted commit together."""
        return self.messaging.transaction()


def build(ctx: ServiceContext) -> Qc:
    return Qc(
        ctx.db, ctx.messaging, ctx.store, ctx.source, replica=ctx.settings.site_role == "replica"
    )


async def _build_inventories(qc: Qc, every: float = 5.0) -> None:
    """Keep the tag inventories current off the event path (see service/inventory.py)."""
    try:  # read off the event loop before ingest needs them
        await asyncio.to_thread(load_standard)
    except Exception:  # read on first use instead
        log.warning("reading the standard's tables failed", exc_info=True)
    await repeat(lambda: inventory.build_pending(qc), every, "building the tag inventories", log)


async def on_start(qc: Qc) -> None:
    if not qc.replica:
        qc._builder = asyncio.create_task(_build_inventories(qc), name="qc-inventories")


async def on_stop(qc: Qc) -> None:
    await stop(qc._builder)
    qc._builder = None


def consumers(qc: Qc) -> Sequence[Consumer]:
    return (
        Consumer(
            "qc.on_collection_updated", (CollectionUpdated.TYPE,), handler=on.on_collection_updated
        ),
        Consumer(
            "qc.on_instance_received",
            (InstanceReceived.TYPE,),
            handler=on.on_instance_received,
            concurrency=PER_INSTANCE_CONCURRENCY,
        ),
        Consumer(
            "qc.on_instance_held",
            (InstanceHeld.TYPE,),
            handler=on.on_instance_held,
            concurrency=PER_INSTANCE_CONCURRENCY,
        ),
        Consumer(
            "qc.on_instance_deidentified",
            (InstanceDeidentified.TYPE,),
            handler=on.on_instance_deidentified,
            concurrency=PER_INSTANCE_CONCURRENCY,
        ),
        Consumer("qc.on_series_indexed", (SeriesIndexed.TYPE,), handler=on.on_series_indexed),
    )


def spec() -> ServiceSpec[Qc]:
    # the routes name ``Qc`` (api/deps.py), so they are imported once it exists
    from services.qc.api import collections, instances, page, series, workspace

    return ServiceSpec(
        name="qc",
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        build=build,
        routers=(
            collections.router,
            workspace.router,
            series.router,
            instances.router,
            page.router,
        ),
        consumers=consumers,
        on_start=on_start,
        on_stop=on_stop,
    )
