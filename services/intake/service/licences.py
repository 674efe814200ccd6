"""Intake's copy of the licences the auth service announces, and a collection's licence
resolved against them."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.app import DomainError
from services.common.events import Licence, LicenceUpdated
from services.common.persistence import upsert
from services.intake import domain
from services.intake.models import LicenceRecord

log = logging.getLogger("imarc.intake")


async def licence_announced(session: AsyncSession, data: LicenceUpdated, at: datetime) -> None:
    """Keep the licence as auth announced it at ``at`` (created, changed or deleted); an
    announcement older than the one that last wrote the row (delivered late, after a
    retry) changes nothing."""
    written = await upsert(
        session,
        LicenceRecord,
        [
            {
                "id": data.id,
                "name": data.name,
                "url": data.url,
                "commercial_use": data.commercial_use,
                "requires_approval": data.requires_approval,
                "deleted": data.deleted,
                "announced_at": at,
            }
        ],
        key=("id",),
        newer_than="announced_at",
    )
    if not written:
        log.info("licence %s: ignoring an announcement older than the one applied", data.id)


async def announced_licences(session: AsyncSession) -> dict[str, Licence | None]:
    """The licences auth announced, by id; None for a deleted one (see domain.resolve_licence)."""
    rows = await session.scalars(select(LicenceRecord))
    return {r.id: None if r.deleted else Licence(id=r.id, name=r.name, url=r.url) for r in rows}


async def resolve_licence(session: AsyncSession, licence_id: str) -> Licence:
    """A collection's licence: auth's announced ones first, then the built-ins.
    Raises domain.UnknownLicence naming the known ids."""
    return domain.resolve_licence(licence_id, await announced_licences(session))


async def licence_for(session: AsyncSession, licence_id: str) -> Licence:
    """:func:`resolve_licence` for a request: an unknown id is a bad request naming the
    known ones."""
    try:
        return await resolve_licence(session, licence_id)
    except domain.UnknownLicence as e:
        raise DomainError(str(e)) from None
