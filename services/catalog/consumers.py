"""The catalog's event consumers: publications, withdrawals and collection records.

Each runs in one unit of work with its inbox record. Indexing a publication emits the
catalog's account of the series (``series.indexed``), which the publisher compares with
what it published. Every change applied is appended to the mirror feed in the same unit
of work (services/catalog/feed.py)."""

from __future__ import annotations

from services.catalog import feed, service
from services.catalog.domain.feed import collection_entry, series_entry, withdrawal_entry
from services.catalog.models import collections
from services.common.events import Event, SeriesPublished, SeriesWithdrawn
from services.common.messaging import UnitOfWork
from services.common.projection import project_collection


async def on_series_published(event: Event, uow: UnitOfWork, *, source: str) -> list[Event]:
    p = event.payload(SeriesPublished)
    indexed = await service.series_published(uow, p, event.time)
    if indexed is None:
        return []
    version = await feed.series_version(uow.session, p.series_instance_uid)
    await feed.append(uow.session, series_entry(event, p, version))
    return [indexed.event(source, subject=p.series_instance_uid)]


async def on_series_withdrawn(event: Event, uow: UnitOfWork) -> list[Event]:
    p = event.payload(SeriesWithdrawn)
    if await service.series_withdrawn(uow, p, event.time):
        attr = await feed.last_attribution(uow.session, p.collection)
        await feed.append(uow.session, withdrawal_entry(event, p, attr))
    return []


async def on_collection_updated(event: Event, uow: UnitOfWork) -> list[Event]:
    """Keep the collection's record (the newest announcement wins)."""
    record = await project_collection(uow.session, collections, event)
    if record is not None:
        await feed.append(uow.session, collection_entry(event, record))
    return []
