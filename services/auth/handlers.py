"""Event handlers of the auth service."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import Collection
from services.auth.tokens import utcnow
from services.common.events import CollectionUpdated, Event


async def on_collection_updated(event: Event, session: AsyncSession) -> list[Event]:
    """Keep each collection's licence: managers approve the licences of their collections."""
    data = event.payload(CollectionUpdated)
    row = await session.get(Collection, data.name)
    if row is None:
        row = Collection(name=data.name)
        session.add(row)
    row.licence_id, row.access, row.updated_at = data.licence.id, data.access, utcnow()
    return []
