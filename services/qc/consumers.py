"""qc's event consumers: each keeps the curation index up to date through a use case."""

from __future__ import annotations

from services.common.events import (
    Event,
    InstanceDeidentified,
    InstanceHeld,
    InstanceReceived,
    SeriesIndexed,
)
from services.common.messaging import UnitOfWork
from services.common.projection import project_collection
from services.qc import service
from services.qc.models import Collection


async def on_collection_updated(event: Event, uow: UnitOfWork) -> list[Event]:
    """Keep the collection's record (the newest announcement wins)."""
    await project_collection(uow.session, Collection, event)
    return []


async def on_instance_received(event: Event, uow: UnitOfWork) -> list[Event]:
    await service.instance_received(uow, event.payload(InstanceReceived), event.time)
    return []


async def on_instance_held(event: Event, uow: UnitOfWork) -> list[Event]:
    await service.instance_held(uow, event.payload(InstanceHeld), event.time)
    return []


async def on_instance_deidentified(event: Event, uow: UnitOfWork) -> list[Event]:
    await service.instance_deidentified(uow, event.payload(InstanceDeidentified), event.time)
    return []


async def on_series_indexed(event: Event, uow: UnitOfWork) -> list[Event]:
    await service.series_indexed(uow, event.payload(SeriesIndexed))
    return []
