"""intake's audit: instances replaced, released or rejected, associations refused — who,
when, why. Entries name instances by id and never carry a header value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import AuditEntry


@dataclass(frozen=True)
class Entry:
    actor: str
    action: str
    collection: str = ""
    instance_id: str = ""
    submission_id: str = ""
    detail: str = ""


async def record(session: AsyncSession, entries: Sequence[Entry], at: datetime) -> None:
    if not entries:
        return
    await session.execute(
        insert(AuditEntry),
        [
            {
                "at": at,
                "actor": e.actor[:200],
                "action": e.action,
                "collection": e.collection,
                "instance_id": e.instance_id,
                "submission_id": e.submission_id,
                "detail": e.detail,
            }
            for e in entries
        ],
    )


async def entries(session: AsyncSession, collection: str, limit: int) -> list[AuditEntry]:
    rows = await session.scalars(
        select(AuditEntry)
        .where(AuditEntry.collection == collection)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
    )
    return list(rows)
