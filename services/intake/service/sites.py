"""Sites that send by DICOM: the calling AE titles each may use, per collection, and the
association policy the C-STORE listener applies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.app import DomainError, NotFound
from services.common.persistence import upsert
from services.intake.models import Collection, DicomSite

AE_MAX = 16


class BadAeTitle(DomainError):
    status = 422


def ae_problem(title: str) -> str | None:
    if not title or len(title) > AE_MAX or " " in title.strip() or title != title.strip():
        return (
            f"AE title {title!r} must be 1 to {AE_MAX} characters without spaces; "
            "use the AE title the modality or PACS is configured with"
        )
    if any(ord(c) < 0x20 or c == "\\" for c in title):
        return f"AE title {title!r} holds a control character or backslash; choose another"
    return None


async def add(
    session: AsyncSession, site: str, collection: str, titles: Sequence[str], by: str
) -> list[DicomSite]:
    if await session.get(Collection, collection) is None:
        raise NotFound(
            f"no collection named {collection}; create it with "
            f"`imarc collections create {collection} --licence ID`"
        )
    for t in titles:
        if problem := ae_problem(t):
            raise BadAeTitle(problem)
    now = datetime.now(UTC)
    rows = [
        {"ae_title": t, "collection": collection, "site": site, "added_by": by, "added_at": now}
        for t in titles
    ]
    await upsert(session, DicomSite, rows, key=["ae_title", "collection"])
    return list(
        await session.scalars(
            select(DicomSite).where(DicomSite.site == site).order_by(DicomSite.ae_title)
        )
    )


async def listing(session: AsyncSession) -> list[DicomSite]:
    return list(
        await session.scalars(
            select(DicomSite).order_by(DicomSite.site, DicomSite.collection, DicomSite.ae_title)
        )
    )


@dataclass(frozen=True)
class Admission:
    """Where an association's instances go, or why it is refused."""

    collection: str = ""
    site: str = ""
    refused: str = ""
    #: A-ASSOCIATE-RJ reason (PS3.8 9.3.4): 3 calling AE not recognised, 7 called AE not
    reason: int = 0


async def admit(session: AsyncSession, calling: str, called: str, own_title: str) -> Admission:
    """The policy: the calling AE must be registered; called by the archive's own AE
    title it sends to its one collection; called by a collection's name, to that one if
    it is registered for it."""
    rows = list(await session.scalars(select(DicomSite).where(DicomSite.ae_title == calling)))
    if not rows:
        return Admission(refused=f"calling AE {calling} is not registered", reason=3)
    if called == own_title:
        if len(rows) == 1:
            return Admission(rows[0].collection, rows[0].site)
        return Admission(
            refused=f"calling AE {calling} sends to several collections; call the collection's "
            "name as the called AE title",
            reason=7,
        )
    for r in rows:
        if r.collection == called:
            return Admission(r.collection, r.site)
    return Admission(refused=f"calling AE {calling} may not send to {called}", reason=7)
