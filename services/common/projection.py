"""The collection projection: each service's own copy of the collections intake announces.

Every service that needs a collection's licence or access rule keeps a ``collections``
table fed by ``org.imarc.collection.updated``. Delivery is at least once and not ordered
across retries, so the copy keeps the record of the *newest* event (by its CloudEvents
``time``): a late, redelivered or replayed older event never rolls a licence back.

A service's table holds the columns it needs among :data:`COLUMNS`, plus ``name``
(the key) and ``updated_at`` (the event time of the stored record).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.events import CollectionUpdated, Event
from services.common.persistence import table_of, upsert


def record_values(p: CollectionUpdated) -> dict[str, Any]:
    """Every column a projection may keep, from one announced record."""
    return {
        "name": p.name,
        "access": p.access,
        "licence_id": p.licence.id,
        "licence_name": p.licence.name,
        "licence_url": p.licence.url,
        "description": p.description,
        "doi": p.doi,
        "require_id_map": p.require_id_map,
        "record": p.model_dump(mode="json"),
    }


#: The columns a projection may keep (besides ``updated_at``).
COLUMNS = frozenset(
    {"name", "access", "licence_id", "licence_name", "licence_url", "description", "doi",
     "require_id_map", "record"}
)  # fmt: skip


async def project_collection(
    session: AsyncSession, model: Any, event: Event
) -> CollectionUpdated | None:
    """Apply ``collection.updated`` to ``model``'s table unless it holds a newer record.

    Returns the record when it was applied, None when a newer one was already kept
    (callers with follow-up rules run them only for an applied record)."""
    p = event.payload(CollectionUpdated)
    table = table_of(model)
    row = {k: v for k, v in record_values(p).items() if k in table.c}
    row["updated_at"] = event.time
    written = await upsert(session, table, [row], key=("name",), newer_than="updated_at")
    return p if written else None
