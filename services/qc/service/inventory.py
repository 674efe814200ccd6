"""Tag inventories kept incrementally, never rebuilt by reading files.

Each de-identified header adds its observations to its collection's curation inventory
once; a replaced instance takes its old ones back; an instance that is published adds its
observations to the public inventory, and one withdrawn (or replaced) takes them back. The
work runs in batches off the event path (:func:`build_pending`, from a background task and
before every inventory read), so ingest pays nothing for it and reads are current.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.persistence import table_of, upsert
from services.qc.domain import Stage
from services.qc.inventory import Key, observe, tally
from services.qc.models import Instance, InventoryCount
from services.qc.queries import CURATED

if TYPE_CHECKING:
    from services.qc.bootstrap import Qc

BATCH = 500
CURATION, PUBLIC = "curation", "public"


def key_hash(key: Key) -> int:
    """A stable signed 63-bit id of an inventory key (fits a BIGINT on every backend)."""
    digest = hashlib.sha256("\x1f".join(key).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _row(collection: str, zone: str, key: Key, count: int) -> dict[str, Any]:
    device, section, path, vr, creator, value = key
    return {
        "collection": collection,
        "zone": zone,
        "key_hash": key_hash(key),
        "device": device,
        "section": section,
        "path": path,
        "vr": vr,
        "creator": creator,
        "value": value,
        "count": count,
    }


class _Delta:
    """Counts to add (with the keys' details) and to take back (by hash), per zone."""

    def __init__(self) -> None:
        self.add: dict[tuple[str, str], Counter[Key]] = defaultdict(Counter)
        self.copy: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
        self.take: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)

    async def apply(self, s: AsyncSession) -> None:
        for (collection, zone), keys in self.add.items():
            rows = [_row(collection, zone, k, n) for k, n in keys.items()]
            await upsert(
                s, InventoryCount, rows, key=("collection", "zone", "key_hash"), add=("count",)
            )
        for (collection, zone), hashes in self.copy.items():
            if hashes:
                await _copy_counts(s, collection, CURATION, zone, hashes)
        for (collection, zone), hashes in self.take.items():
            if not hashes:
                continue
            t = table_of(InventoryCount)
            await s.execute(
                update(t)  # Core, so that the parameter list runs as one executemany
                .where(
                    t.c.collection == collection, t.c.zone == zone, t.c.key_hash == bindparam("h")
                )
                .values(count=t.c.count - bindparam("n")),
                [{"h": h, "n": n} for h, n in hashes.items()],
            )
        for collection, zone in {*self.take}:
            await s.execute(
                delete(InventoryCount).where(
                    InventoryCount.collection == collection,
                    InventoryCount.zone == zone,
                    InventoryCount.count <= 0,
                )
            )


async def _copy_counts(
    s: AsyncSession, collection: str, src: str, dst: str, hashes: Counter[int]
) -> None:
    """Add ``hashes`` to zone ``dst``, taking each key's details from zone ``src``."""
    rows = (
        await s.scalars(
            select(InventoryCount).where(
                InventoryCount.collection == collection,
                InventoryCount.zone == src,
                InventoryCount.key_hash.in_(list(hashes)),
            )
        )
    ).all()
    values = [
        {
            "collection": collection,
            "zone": dst,
            "key_hash": r.key_hash,
            "device": r.device,
            "section": r.section,
            "path": r.path,
            "vr": r.vr,
            "creator": r.creator,
            "value": r.value,
            "count": hashes[r.key_hash],
        }
        for r in rows
    ]
    if values:
        await upsert(
            s, InventoryCount, values, key=("collection", "zone", "key_hash"), add=("count",)
        )


def _pending() -> Any:
    """Instances whose inventories are behind: a header not yet (or not as it is now)
    counted, or a publication (or withdrawal) not yet reflected in the public zone."""
    published = Instance.stage == Stage.PUBLISHED
    return or_(
        and_(
            Instance.stage.in_(CURATED),
            Instance.header.is_not(None),
            or_(
                Instance.inventoried_sha256.is_(None),
                Instance.inventoried_sha256 != Instance.sha256,
            ),
        ),
        and_(published, Instance.public_inventoried.is_(False)),
        and_(~published, Instance.public_inventoried.is_(True)),
    )


def _step(inst: Instance, delta: _Delta) -> None:
    c = inst.collection
    old = list(inst.inventory_keys or ())
    if inst.public_inventoried:  # out of public first, with the keys it went in with
        delta.take[(c, PUBLIC)].update(old)
        inst.public_inventoried = False
    current = inst.inventoried_sha256 is not None and inst.inventoried_sha256 == inst.sha256
    if inst.stage in CURATED and inst.header is not None and not current:
        delta.take[(c, CURATION)].update(old)
        keys = tally(observe(inst.header, inst.sop_class_uid or ""))
        delta.add[(c, CURATION)].update(keys)
        inst.inventory_keys = sorted({key_hash(k) for k in keys})
        inst.inventoried_sha256 = inst.sha256
    if inst.stage == Stage.PUBLISHED:
        delta.copy[(c, PUBLIC)].update(inst.inventory_keys or ())
        inst.public_inventoried = True


async def build_pending(qc: Qc, limit: int = BATCH) -> int:
    """Bring the inventories up to date for up to ``limit`` instances in one unit of work;
    returns how many were taken (0 when everything is current)."""
    async with qc.uow() as uow:
        rows = (
            await uow.session.scalars(
                select(Instance).where(_pending()).limit(limit).with_for_update()
            )
        ).all()
        delta = _Delta()
        for inst in rows:
            _step(inst, delta)
        # curation first: the public zone copies its keys' details from there
        await _apply_in_order(uow.session, delta)
    return len(rows)


async def _apply_in_order(s: AsyncSession, delta: _Delta) -> None:
    curation = _Delta()
    curation.add = delta.add
    curation.take = {k: v for k, v in delta.take.items() if k[1] == CURATION}
    await curation.apply(s)
    public = _Delta()
    public.copy = delta.copy
    public.take = {k: v for k, v in delta.take.items() if k[1] == PUBLIC}
    await public.apply(s)


async def catch_up(qc: Qc) -> None:
    """Build until nothing is pending (before an inventory is read)."""
    while await build_pending(qc):
        pass


def series_inventory(headers: Iterable[tuple[dict[str, Any], str]]) -> Counter[Key]:
    """The inventory of a few instances (one series, one submission), from their headers."""
    out: Counter[Key] = Counter()
    for header, sop_class in headers:
        out.update(tally(observe(header, sop_class)))
    return out
