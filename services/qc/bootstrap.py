"""Wires the qc service: tables, migrations, routes and consumers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from services.common.events import (
    CollectionUpdated,
    InstanceDeidentified,
    InstanceHeld,
    InstanceReceived,
)
from services.common.service import Consumer, ServiceContext, ServiceSpec
from services.qc import api, handlers
from services.qc.models import metadata


def consumers(ctx: ServiceContext) -> Sequence[Consumer]:
    return (
        Consumer(
            "qc.on_collection_updated",
            (CollectionUpdated.TYPE,),
            handler=handlers.on_collection_updated,
        ),
        Consumer(
            "qc.on_instance_received",
            (InstanceReceived.TYPE,),
            handler=handlers.on_instance_received,
            concurrency=PER_INSTANCE_CONCURRENCY,
        ),
        Consumer(
            "qc.on_instance_held",
            (InstanceHeld.TYPE,),
            handler=handlers.on_instance_held,
            concurrency=PER_INSTANCE_CONCURRENCY,
        ),
        Consumer(
            "qc.on_instance_deidentified",
            (InstanceDeidentified.TYPE,),
            handler=handlers.on_instance_deidentified,
            concurrency=PER_INSTANCE_CONCURRENCY,
        ),
    )


# Per-instance events are independent (the newest event time decides an instance's stage),
# so many are taken at once and group-committed by the messaging layer.
PER_INSTANCE_CONCURRENCY = 32


def spec() -> ServiceSpec:
    return ServiceSpec(
        name="qc",
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        router=api.router,
        consumers=consumers,
    )
