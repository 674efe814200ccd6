"""Where each submitted instance is: received, held (at which stage, why), de-identified,
published. Intake writes the first two itself; de-id's and qc's/catalog's events tell it
the rest. A late event never moves an instance back (``stage_at``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.events import InstanceDeidentified, InstanceHeld, SeriesPublished
from services.common.messaging import UnitOfWork
from services.common.persistence import upsert
from services.intake.models import InstanceState

RECEIVED, HELD, DEIDENTIFIED, PUBLISHED = "received", "held", "deidentified", "published"


@dataclass(frozen=True)
class Stage:
    instance_id: str
    collection: str
    stage: str
    held_stage: str = ""
    reason_code: str = ""
    reason: str = ""

    def row(self, at: datetime) -> dict[str, object]:
        return {
            "instance_id": self.instance_id,
            "collection": self.collection,
            "stage": self.stage,
            "held_stage": self.held_stage,
            "reason_code": self.reason_code,
            "reason": self.reason,
            "deid_uid": "",
            "stage_at": at,
        }


async def record(session: AsyncSession, stages: Sequence[Stage], at: datetime) -> None:
    """Intake's own verdicts: received or held at intake, as of ``at``."""
    await upsert(
        session,
        InstanceState,
        [s.row(at) for s in stages],
        key=["instance_id"],
        newer_than="stage_at",
    )


async def deid_held(uow: UnitOfWork, held: InstanceHeld, at: datetime) -> None:
    if held.stage != "deid":
        return  # intake's own holds are recorded with the files
    stage = Stage(held.instance_id, held.collection, HELD, "deid", held.code or "deid", held.reason)
    await record(uow.session, [stage], at)


async def deidentified(uow: UnitOfWork, done: InstanceDeidentified, at: datetime) -> None:
    row = Stage(done.instance_id, done.collection, DEIDENTIFIED).row(at)
    row["deid_uid"] = done.sop_instance_uid
    await upsert(uow.session, InstanceState, [row], key=["instance_id"], newer_than="stage_at")


async def published(uow: UnitOfWork, series: SeriesPublished, at: datetime) -> None:
    uids = [i.sop_instance_uid for i in series.instances]
    for start in range(0, len(uids), 1000):
        await uow.session.execute(
            update(InstanceState)
            .where(
                InstanceState.deid_uid.in_(uids[start : start + 1000]),
                InstanceState.collection == series.collection.name,
                InstanceState.stage_at <= at,
            )
            .values(stage=PUBLISHED, held_stage="", reason_code="", reason="", stage_at=at)
        )
