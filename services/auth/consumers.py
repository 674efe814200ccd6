"""auth's event consumers."""

from __future__ import annotations

from services.auth.models import Collection
from services.common.events import Event
from services.common.messaging import UnitOfWork
from services.common.projection import project_collection


async def on_collection_updated(event: Event, uow: UnitOfWork) -> list[Event]:
    """Keep each collection's licence: managers approve the licences of their collections."""
    await project_collection(uow.session, Collection, event)
    return []
