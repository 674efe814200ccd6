"""download's event consumers: collection access rules and the index of published series."""

from __future__ import annotations

from services.common.events import Event, SeriesPublished, SeriesWithdrawn
from services.common.messaging import UnitOfWork
from services.common.projection import project_collection
from services.download import service
from services.download.models import Collection


async def on_collection_updated(event: Event, uow: UnitOfWork) -> list[Event]:
    """Keep the collection's record (the newest announcement wins)."""
    await project_collection(uow.session, Collection, event)
    return []


async def on_series_published(event: Event, uow: UnitOfWork) -> list[Event]:
    await service.series_published(uow, event.payload(SeriesPublished))
    return []


async def on_series_withdrawn(event: Event, uow: UnitOfWork) -> list[Event]:
    await service.series_withdrawn(uow, event.payload(SeriesWithdrawn), event.time)
    return []
