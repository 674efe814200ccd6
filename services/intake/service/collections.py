"""Collections: register one, change it, and announce the record (collection.updated)
in the same transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.common.events import CollectionUpdated, Event, Licence
from services.common.messaging import Transaction
from services.intake import domain
from services.intake.models import Collection


class CollectionExists(Exception):
    pass


def collection_updated(c: Collection, source: str) -> Event:
    return CollectionUpdated(
        name=c.name,
        licence=Licence(id=c.licence_id, name=c.licence_name, url=c.licence_url),
        access=c.access,  # type: ignore[arg-type]
        description=c.description,
        doi=c.doi,
        require_id_map=c.require_id_map,
        citation=c.citation,
        data_usage_policy=c.data_usage_policy,
        face_reconstructable=c.face_reconstructable,
    ).event(source, subject=c.name)


async def register_collection(
    tx: Transaction,
    source: str,
    *,
    name: str,
    licence: Licence,
    access: str,
    description: str,
    doi: str,
    require_id_map: bool,
    by: str,
    citation: str = "",
    data_usage_policy: str = "",
    face_reconstructable: bool = False,
) -> Collection:
    if await tx.session.get(Collection, name) is not None:
        raise CollectionExists(name)
    now = datetime.now(UTC)
    c = Collection(
        name=name,
        licence_id=licence.id,
        licence_name=licence.name,
        licence_url=licence.url,
        access=access,
        description=description,
        doi=doi,
        require_id_map=require_id_map,
        citation=citation,
        data_usage_policy=data_usage_policy,
        face_reconstructable=face_reconstructable,
        created_by=by,
        created_at=now,
        updated_at=now,
    )
    tx.session.add(c)
    await tx.session.flush()
    tx.emit(collection_updated(c, source))
    return c


async def update_collection(
    tx: Transaction, source: str, c: Collection, *, licence: Licence | None, **changes: Any
) -> Collection:
    """Apply the given changes (None means unchanged) and announce the new record.
    Raises ValueError when the changes would make a face-reconstructable collection public."""
    if licence is not None:
        c.licence_id, c.licence_name, c.licence_url = licence.id, licence.name, licence.url
    for field, value in changes.items():
        if value is not None:
            setattr(c, field, value)
    c.access = domain.access_with_face_policy(
        c.access, c.face_reconstructable, asked=changes.get("access") is not None
    )
    c.updated_at = datetime.now(UTC)
    tx.session.add(c)
    await tx.session.flush()
    tx.emit(collection_updated(c, source))
    return c
