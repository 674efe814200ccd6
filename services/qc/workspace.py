"""Reads of the curation workspace for the API and the page (no writes): inventories,
residual-PHI findings, review history, a series' instances and headers, and the status of
every collection at a glance."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database
from services.qc.domain import (
    NotFound,
    Stage,
    face_geometry_hint,
    face_reason,
)
from services.qc.inventory import SECTIONS, Key
from services.qc.models import (
    Approval,
    Audit,
    Collection,
    CurationSettings,
    Finding,
    Instance,
    InventoryCount,
    ReviewEvent,
    Series,
)
from services.qc.queries import CURATED, series_headers


async def inventory(db: Database, collection: str, zone: str) -> Counter[Key]:
    async with db.session() as s:
        rows = (
            await s.scalars(
                select(InventoryCount).where(
                    InventoryCount.collection == collection, InventoryCount.zone == zone
                )
            )
        ).all()
    return Counter({(r.device, r.section, r.path, r.vr, r.creator, r.value): r.count for r in rows})


async def headers_of(db: Database, *, series: str) -> list[tuple[dict[str, Any], str]]:
    """The de-identified headers (with SOP class) of a series' curated instances."""
    async with db.session() as s:
        rows = (
            await s.execute(
                select(Instance.header, Instance.sop_class_uid).where(
                    Instance.series_instance_uid == series, Instance.stage.in_(CURATED)
                )
            )
        ).all()
    return [(h or {}, c or "") for h, c in rows]


async def findings(db: Database, collection: str, series: str | None = None) -> list[Finding]:
    async with db.session() as s:
        query = select(Finding).where(Finding.collection == collection)
        if series:
            query = query.where(Finding.series_instance_uid == series)
        rows = await s.scalars(
            query.order_by(Finding.series_instance_uid, Finding.sop_instance_uid, Finding.path)
        )
        return list(rows.all())


async def history(db: Database, series: str) -> list[ReviewEvent]:
    async with db.session() as s:
        rows = await s.scalars(
            select(ReviewEvent)
            .where(ReviewEvent.series_instance_uid == series)
            .order_by(ReviewEvent.id)
        )
        return list(rows.all())


async def series_of(db: Database, uid: str) -> Series:
    async with db.session() as s:
        row = await s.get(Series, uid)
    if row is None:
        raise NotFound(f"series {uid} is not in curation; check the UID")
    return row


async def instances_of(db: Database, series: str) -> list[Instance]:
    """A series' curated instances in slice order (InstanceNumber, then SOP UID)."""
    async with db.session() as s:
        rows = (
            await s.scalars(
                select(Instance).where(
                    Instance.series_instance_uid == series, Instance.stage.in_(CURATED)
                )
            )
        ).all()

    def number(i: Instance) -> int:
        values = ((i.header or {}).get("00200013") or {}).get("Value") or [0]
        try:
            return int(float(values[0] or 0))
        except (TypeError, ValueError):
            return 0

    return sorted(rows, key=lambda i: (number(i), i.sop_instance_uid or ""))


async def instance(db: Database, instance_id: str) -> Instance:
    async with db.session() as s:
        row = await s.get(Instance, instance_id)
    if row is None or row.stage not in CURATED:
        raise NotFound(f"instance {instance_id} is not in curation; check the id")
    return row


def _count(cond: Any) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


async def at_a_glance(db: Database, collections: list[str] | None) -> list[dict[str, Any]]:
    """Every collection qc knows (or those named): settings, counts per stage, held by
    reason, flagged series, and whether what was published is all in public."""
    async with db.session() as s:
        names = set((await s.scalars(select(Collection.name))).all())
        names |= set((await s.scalars(select(Instance.collection).distinct())).all())
        if collections is not None:
            names &= set(collections)
        counts = {
            r[0]: r[1:]
            for r in (
                await s.execute(
                    select(
                        Instance.collection,
                        _count(Instance.received_at.is_not(None)),
                        _count(Instance.stage == Stage.HELD),
                        _count(Instance.stage.in_(CURATED)),
                        _count(Instance.stage == Stage.DEIDENTIFIED),
                        _count(Instance.stage == Stage.PUBLISHED),
                    ).group_by(Instance.collection)
                )
            ).all()
        }
        held: dict[str, dict[str, int]] = {}
        for coll, stage, reason, n in (
            await s.execute(
                select(Instance.collection, Instance.held_stage, Instance.held_reason, func.count())
                .where(Instance.stage == Stage.HELD)
                .group_by(Instance.collection, Instance.held_stage, Instance.held_reason)
            )
        ).all():
            held.setdefault(coll, {})[f"{stage}: {reason}"] = int(n)
        flagged = dict(
            (
                await s.execute(
                    select(
                        Finding.collection, func.count(func.distinct(Finding.series_instance_uid))
                    ).group_by(Finding.collection)
                )
            ).all()
        )
        settings = {r.collection: r for r in (await s.scalars(select(CurationSettings))).all()}
        approvals = dict(
            (
                await s.execute(
                    select(Approval.collection, func.count()).group_by(Approval.collection)
                )
            ).all()
        )
        checks = await _public_checks(s)
        faces = await _face_suggestions(s)
    out = []
    for name in sorted(names):
        c = counts.get(name, (0, 0, 0, 0, 0))
        st = settings.get(name)
        check = checks.get(name) or PublicCheck()
        out.append(
            {
                "collection": name,
                "status": st.status if st else "active",
                "priority": st.priority if st else 0,
                "submitter_approval": bool(st and st.submitter_approval),
                "received": int(c[0]),
                "held": int(c[1]),
                "deidentified": int(c[2]),
                "awaiting_review": int(c[3]),
                "published": int(c[4]),
                "held_by_reason": held.get(name, {}),
                "flagged_series": int(flagged.get(name, 0)),
                "approved_series": int(approvals.get(name, 0)),
                **check.report(),
                "face_suggestion": faces.get(name),
            }
        )
    return sorted(out, key=lambda r: (-r["priority"], r["collection"]))


@dataclass
class PublicCheck:
    """What a collection published from curation beside what the catalog reports it
    indexed (series.indexed): patients, studies, series and instances on each side."""

    published: list[tuple[str, str, str, int]] = field(default_factory=list)
    public: list[tuple[str, str, str, int]] = field(default_factory=list)
    pending: int = 0
    mismatched: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        def counts(rows: list[tuple[str, str, str, int]]) -> dict[str, int]:
            return {
                "patients": len({r[1] for r in rows}),
                "studies": len({r[2] for r in rows}),
                "series": len(rows),
                "instances": sum(r[3] for r in rows),
            }

        state = "mismatch" if self.mismatched else "pending" if self.pending else "match"
        return {
            "published_counts": counts(self.published),
            "public": counts(self.public),
            "public_check": {
                "state": state,
                "pending_series": self.pending,
                "mismatched_series": self.mismatched[:MISMATCHES_SHOWN],
            },
        }


MISMATCHES_SHOWN = 20


async def _public_checks(s: AsyncSession) -> dict[str, PublicCheck]:
    """Every collection's public count check (see :class:`PublicCheck`)."""
    published = dict(
        (
            await s.execute(
                select(
                    Instance.series_instance_uid, func.count(func.distinct(Instance.curation_key))
                )
                .where(Instance.stage == Stage.PUBLISHED)
                .group_by(Instance.series_instance_uid)
            )
        ).all()
    )
    checks: dict[str, PublicCheck] = {}
    for r in await s.scalars(select(Series).where(Series.published_at.is_not(None))):
        c = checks.setdefault(r.collection, PublicCheck())
        mine = (r.series_instance_uid, r.patient_id, r.study_instance_uid)
        c.published.append((*mine, int(published.get(r.series_instance_uid, 0))))
        assert r.published_at is not None
        if r.public_released_at is None or r.public_released_at < r.published_at:
            c.pending += 1  # the catalog has not reported this publication yet
            continue
        theirs = (
            r.series_instance_uid,
            str(r.public_patient_id),
            str(r.public_study_instance_uid),
            int(r.public_instances or 0),
        )
        c.public.append(theirs)
        if theirs != c.published[-1]:
            c.mismatched.append(r.series_instance_uid)
    return checks


async def _face_suggestions(s: AsyncSession) -> dict[str, str]:
    """Collections not marked face_reconstructable whose curated series look like head or
    neck CT/MR (descriptions, body part, or a head-sized geometry): a suggestion to a
    manager to mark them (TCIA's head and neck policy)."""
    marked = {
        c.name
        for c in await s.scalars(select(Collection))
        if (c.record or {}).get("face_reconstructable")
    }
    found: dict[str, list[str]] = {}
    for collection, _, modality, header in await series_headers(s):
        if collection in marked:
            continue
        reason = face_reason(modality, header) or face_geometry_hint(modality, header)
        if reason:
            found.setdefault(collection, []).append(reason)
    return {
        c: f"{len(reasons)} series look like head or neck ({reasons[0]}): mark the collection "
        "face_reconstructable (limited access) if a face could be rebuilt from them"
        for c, reasons in found.items()
    }


async def audit(db: Database, collection: str) -> list[Audit]:
    async with db.session() as s:
        rows = await s.scalars(
            select(Audit).where(Audit.collection == collection).order_by(Audit.id)
        )
        return list(rows.all())


__all__ = ["SECTIONS"]
