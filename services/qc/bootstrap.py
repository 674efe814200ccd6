"""Wires the qc service: its typed dependencies, tables, migrations, routes and consumers."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from services.common.db import Database
from services.common.events import (
    CollectionUpdated,
    InstanceDeidentified,
    InstanceHeld,
    InstanceReceived,
)
from services.common.messaging import Messaging, UnitOfWork
from services.common.service import Consumer, ServiceContext, ServiceSpec
from services.common.store import ObjectStore
from services.qc import consumers as on
from services.qc.models import metadata

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

    def uow(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A unit of work: state changes and the events emitted commit together."""
        return self.messaging.transaction()


def build(ctx: ServiceContext) -> Qc:
    return Qc(ctx.db, ctx.messaging, ctx.store, ctx.source)


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
    )


def spec() -> ServiceSpec[Qc]:
    # the routes name ``Qc`` (api/deps.py), so they are imported once it exists
    from services.qc.api import collections, series

    return ServiceSpec(
        name="qc",
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        build=build,
        routers=(collections.router, series.router),
        consumers=consumers,
    )
