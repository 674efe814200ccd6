"""The integrity rules that need what the collection already holds: a Study, Series or
SOP Instance UID belongs to one patient (PatientID + IssuerOfPatientID). An instance that
names a UID already received under another patient is held ``patient_conflict``; a study
found under two patients is held as a whole (what it had received too) until a curator
decides. Nothing is dropped: held instances stay in quarantine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.persistence import insert_ignore
from services.intake.domain import Held
from services.intake.models import InstanceState, ReceivedInstance, UidOwner
from services.intake.service import stages

CODE = "patient_conflict"
LEVELS = (
    ("study", "StudyInstanceUID (0020,000D)"),
    ("series", "SeriesInstanceUID (0020,000E)"),
    ("instance", "SOPInstanceUID (0008,0018)"),
)
WHOLE_STUDY = (
    "its study was received under two patients (PatientID + IssuerOfPatientID), so the "
    "whole study is held; a curator releases the instances that are right and rejects the rest"
)


@dataclass(frozen=True)
class Claim:
    instance_id: str
    patient: str
    study: str
    series: str
    sop: str

    def uids(self) -> tuple[str, str, str]:
        return self.study, self.series, self.sop


@dataclass
class Decision:
    #: instances of this batch held, by instance id
    held: dict[str, Held] = field(default_factory=dict)
    #: instances received before, now held because their study turned out to be conflicted
    earlier: list[str] = field(default_factory=list)


def conflict_reason(levels: Sequence[str]) -> str:
    names = [label for level, label in LEVELS if level in levels]
    return (
        f"{' and '.join(names)} already received in this collection under another patient "
        "(PatientID + IssuerOfPatientID); a curator decides which is right"
    )


async def check(session: AsyncSession, collection: str, claims: Sequence[Claim]) -> Decision:
    """Claim each UID for its patient, first come first served, and hold what conflicts."""
    decision = Decision()
    if not claims:
        return decision
    first: dict[str, dict[str, object]] = {}
    for c in claims:
        for (level, _), uid in zip(LEVELS, c.uids(), strict=True):
            first.setdefault(
                uid,
                {
                    "collection": collection,
                    "uid": uid,
                    "level": level,
                    "patient": c.patient,
                    "conflicted": False,
                },
            )
    await insert_ignore(session, UidOwner, list(first.values()), key=["collection", "uid"])
    owners: dict[str, tuple[str, bool]] = {}
    uids = list(first)
    for start in range(0, len(uids), 500):
        rows = await session.execute(
            select(UidOwner.uid, UidOwner.patient, UidOwner.conflicted).where(
                UidOwner.collection == collection, UidOwner.uid.in_(uids[start : start + 500])
            )
        )
        owners.update({uid: (patient, bool(conflicted)) for uid, patient, conflicted in rows})
    newly: set[str] = set()
    for c in claims:
        levels = [
            level
            for (level, _), uid in zip(LEVELS, c.uids(), strict=True)
            if owners[uid][0] != c.patient
        ]
        if levels:
            decision.held[c.instance_id] = Held(CODE, conflict_reason(levels))
            if "study" in levels and not owners[c.study][1]:
                newly.add(c.study)
                owners[c.study] = (owners[c.study][0], True)
    for c in claims:  # the rest of a study found conflicted, in this batch too
        if c.instance_id not in decision.held and owners[c.study][1]:
            decision.held[c.instance_id] = Held(CODE, WHOLE_STUDY)
    if newly:
        await session.execute(
            update(UidOwner)
            .where(UidOwner.collection == collection, UidOwner.uid.in_(sorted(newly)))
            .values(conflicted=True)
        )
        earlier = await session.execute(
            select(ReceivedInstance.instance_id)
            .outerjoin(InstanceState, InstanceState.instance_id == ReceivedInstance.instance_id)
            .where(
                ReceivedInstance.collection == collection,
                ReceivedInstance.study_instance_uid.in_(sorted(newly)),
                (InstanceState.stage.is_(None))
                | (InstanceState.stage.notin_([stages.PUBLISHED, stages.HELD])),
            )
        )
        batch = {c.instance_id for c in claims}
        decision.earlier = [iid for (iid,) in earlier if iid not in batch]
    return decision
