"""intake's reads: collections, counts and the files held at intake."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Collection, HeldInstance, ReceivedInstance


async def get_collection(session: AsyncSession, name: str) -> Collection | None:
    return await session.get(Collection, name)


async def counts(session: AsyncSession, collection: str) -> tuple[int, int]:
    received = await session.scalar(
        select(func.count())
        .select_from(ReceivedInstance)
        .where(ReceivedInstance.collection == collection)
    )
    held = await session.scalar(
        select(func.count()).select_from(HeldInstance).where(HeldInstance.collection == collection)
    )
    return int(received or 0), int(held or 0)


async def held_files(
    session: AsyncSession, collection: str, *, limit: int, offset: int
) -> list[HeldInstance]:
    rows = await session.scalars(
        select(HeldInstance)
        .where(HeldInstance.collection == collection)
        .order_by(HeldInstance.received_at, HeldInstance.filename)
        .limit(limit)
        .offset(offset)
    )
    return list(rows)
