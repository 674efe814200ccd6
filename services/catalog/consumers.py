"""The catalog's event consumers: publications, withdrawals and collection records.

Each runs in one unit of work with its inbox record. Indexing a publication emits the
catalog's account of the series (``series.indexed``), which the publisher compares with
what it published."""

from __future__ import annotations

from services.catalog import service
from services.catalog.models import collections
from services.common.events import Event, SeriesPublished, SeriesWithdrawn
from services.common.messaging import UnitOfWork
from services.common.projection import project_collection


async def on_series_published(event: Event, uow: UnitOfWork, *, source: str) -> list[Event]:
    p = event.payload(SeriesPublished)
    indexed = await service.series_published(uow, p, event.time)
    return [indexed.event(source, subject=p.series_instance_uid)] if indexed else []


async def on_series_withdrawn(event: Event, uow: UnitOfWork) -> list[Event]:
    await service.series_withdrawn(uow, event.payload(SeriesWithdrawn), event.time)
    return []


async def on_collection_updated(event: Event, uow: UnitOfWork) -> list[Event]:
    """Keep the collection's record (the newest announcement wins)."""
    await project_collection(uow.session, collections, event)
    return []
