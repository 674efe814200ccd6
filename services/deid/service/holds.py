"""Holds: an instance kept in quarantine with the reason, and which event may still
decide an instance's state."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from sqlalchemy import bindparam, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import as_utc
from services.common.events import Event, InstanceHeld, InstanceReceived, ObjectRef
from services.common.messaging import UnitOfWork
from services.common.metrics import INSTANCES_HELD
from services.common.persistence import upsert
from services.deid import domain
from services.deid.models import Hold, Instance, UidMapping

if TYPE_CHECKING:
    from services.deid.bootstrap import Deid

log = logging.getLogger("imarc.deid")


@dataclass(frozen=True)
class Outcome:
    """What became of one received event."""

    instance_id: str
    outcome: Literal["deidentified", "held", "skipped"]
    reason: str | None = None
    profile_version: int | None = None
    object: ObjectRef | None = None


_LATEST_RECEIVED = (
    select(Hold.received_at, literal("hold"))
    .where(Hold.instance_id == bindparam("instance_id"))
    .union_all(
        select(Instance.received_at, literal("instance")).where(
            Instance.instance_id == bindparam("instance_id")
        )
    )
)


async def is_current(
    s: AsyncSession, instance_id: str, received_at: datetime, require_hold: bool
) -> bool:
    """Whether this event may still decide the instance's state.

    A release only acts on an instance that is still held; an older received event that is
    redelivered late must not undo the outcome of a newer submission of the same instance.
    """
    latest = await s.execute(_LATEST_RECEIVED, {"instance_id": instance_id})
    seen = {kind: as_utc(at) for at, kind in latest.all()}
    if require_hold:
        return "hold" in seen
    return not seen or received_at >= max(seen.values())


async def record_hold(
    deid: Deid,
    consumer: str,
    event: Event,
    received: InstanceReceived,
    reason: str,
    require_hold: bool,
    uid_map: Mapping[str, str] | None = None,
) -> Outcome:
    """Keep the instance in quarantine with ``reason`` and announce it (once per event).

    ``uid_map`` holds the UIDs the engine will give the instance when it is released: they
    go into the collection's UID map now, so the instance keeps its place (references to
    it from other instances already map to those UIDs)."""
    current = True

    async def effect(uow: UnitOfWork) -> list[Event]:
        nonlocal current
        s = uow.session
        current = await is_current(s, received.instance_id, event.time, require_hold)
        if not current:
            return []
        payload = received.model_dump(mode="json")
        payload["release_pixel_hold"] = False
        row = {
            "instance_id": received.instance_id,
            "collection": received.collection,
            "reason": reason,
            "kind": domain.reason_kind(reason),
            "received": payload,
            "received_at": event.time,
            "held_at": datetime.now(UTC),
            "event_id": event.id,
            "text_boxes": None,  # a new object: its OCR evidence is looked for again
        }
        await upsert(s, Hold, [row], key=("instance_id",))
        mappings = [
            {"collection": received.collection, "old": old, "new": new}
            for old, new in sorted((uid_map or {}).items())
            if old != new
        ]
        await upsert(s, UidMapping, mappings, key=("collection", "old"))
        held = InstanceHeld(
            instance_id=received.instance_id,
            collection=received.collection,
            site=received.site,
            filename=received.filename,
            stage="deid",
            reason=reason,
            code=domain.reason_kind(reason),
        )
        return [held.event(deid.source, subject=received.instance_id)]

    applied = await deid.messaging.apply_once(consumer, event, effect)
    if not (applied and current):
        return Outcome(received.instance_id, "skipped")
    INSTANCES_HELD.labels("deid", domain.reason_kind(reason)).inc()
    log.info(
        "held %s: %s",
        received.instance_id,
        reason,
        extra={"service": "deid", "event_id": event.id, "collection": received.collection},
    )
    return Outcome(received.instance_id, "held", reason=reason)
