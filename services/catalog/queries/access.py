"""What a caller may read: access is decided in Python with ``Principal.can_read`` over
the (few) collection records, then applied to every read as ``collection IN (...)``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.domain.collections import CollectionInfo
from services.catalog.models import collections
from services.common.security import Principal


@dataclass(frozen=True)
class Visible:
    """The collections one caller may read."""

    collections: dict[str, CollectionInfo]
    everything: bool  # no collection is hidden from this caller

    def scope(self, wanted: str | None = None) -> list[str] | None:
        """Collections a query is restricted to: None means "no restriction needed"."""
        if wanted:
            key = wanted.upper()
            return [n for n in self.collections if n.upper() == key]
        return None if self.everything else list(self.collections)

    def info(self, name: str) -> CollectionInfo:
        return self.collections[name]


async def visible(conn: AsyncConnection, principal: Principal) -> Visible:
    rows = (await conn.execute(select(collections))).mappings().all()
    infos = [
        CollectionInfo(
            id=r["id"], name=r["name"], licence_id=r["licence_id"],
            licence_name=r["licence_name"], licence_url=r["licence_url"], access=r["access"],
            description=r["description"], doi=r["doi"],
        )
        for r in rows
    ]  # fmt: skip
    readable = {c.name: c for c in infos if principal.can_read(c.name, c.access, c.licence_id)}
    return Visible(readable, everything=len(readable) == len(infos))
