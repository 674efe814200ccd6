"""intake's event consumers: the licences auth announces, and how far later stages have
taken each submitted instance (for a submission's counts and the quarantine view)."""

from __future__ import annotations

from services.common.events import (
    Event,
    InstanceDeidentified,
    InstanceHeld,
    LicenceUpdated,
    SeriesPublished,
)
from services.common.messaging import UnitOfWork
from services.intake.service import licences, stages

__all__ = [
    "on_instance_deidentified",
    "on_instance_held",
    "on_licence_updated",
    "on_series_published",
]


async def on_licence_updated(event: Event, uow: UnitOfWork) -> list[Event]:
    await licences.licence_announced(uow.session, event.payload(LicenceUpdated), event.time)
    return []


async def on_instance_held(event: Event, uow: UnitOfWork) -> list[Event]:
    await stages.deid_held(uow, event.payload(InstanceHeld), event.time)
    return []


async def on_instance_deidentified(event: Event, uow: UnitOfWork) -> list[Event]:
    await stages.deidentified(uow, event.payload(InstanceDeidentified), event.time)
    return []


async def on_series_published(event: Event, uow: UnitOfWork) -> list[Event]:
    await stages.published(uow, event.payload(SeriesPublished), event.time)
    return []
