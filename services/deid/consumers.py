"""deid's event consumers: thin, each hands its event to a use case."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.common.events import Event
from services.common.messaging import UnitOfWork
from services.deid import service

if TYPE_CHECKING:
    from services.deid.bootstrap import Deid

RECEIVED_QUEUE = "deid.on_instance_received"
COLLECTIONS_QUEUE = "deid.on_collection_updated"


async def on_collection_updated(event: Event, uow: UnitOfWork) -> list[Event]:
    """Keep deid's copy of the collection; a new collection gets its first profile."""
    await service.collection_updated(uow, event)
    return []


async def on_instance_received(event: Event, *, deid: Deid) -> None:
    """``deid.on_instance_received`` is raw: the heavy work runs outside a transaction,
    and its effect commits once per event id (see service/pipeline.py)."""
    if await deid.messaging.seen(RECEIVED_QUEUE, event.id):
        return
    await service.process_received(deid, RECEIVED_QUEUE, event)
