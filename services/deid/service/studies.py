"""Which patient each original study belongs to: the first patient seen in it. An
instance of another patient in the same study (a misfiled slice) is held for review
rather than given its own patient's pseudonym and date offset inside that study."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from services.common.persistence import insert_ignore
from services.deid.models import StudyPatient
from services.deid.service.pseudonyms import Patient

if TYPE_CHECKING:
    from services.deid.bootstrap import Deid

_CACHE_SIZE = 100_000


@dataclass
class StudyOwners:
    """Owners this process has seen: a study's owner never changes once recorded, so a
    series of hundreds of instances costs one transaction."""

    size: int = _CACHE_SIZE
    _known: dict[tuple[str, str], Patient] = field(default_factory=dict)

    def get(self, collection: str, study_uid: str) -> Patient | None:
        return self._known.get((collection, study_uid))

    def put(self, collection: str, study_uid: str, patient: Patient) -> None:
        if len(self._known) >= self.size:
            self._known.clear()
        self._known[(collection, study_uid)] = patient


async def study_owner(deid: Deid, collection: str, study_uid: str, patient: Patient) -> Patient:
    """The patient the study belongs to: recorded as ``patient`` when the study is new."""
    known = deid.studies.get(collection, study_uid)
    if known is not None:
        return known
    row = {
        "collection": collection,
        "study_uid": study_uid,
        "original_id": patient[0],
        "issuer": patient[1],
        "first_seen": datetime.now(UTC),
    }
    async with deid.db.session() as s, s.begin():
        await insert_ignore(s, StudyPatient, [row], key=("collection", "study_uid"))
        found = (
            await s.execute(
                select(StudyPatient.original_id, StudyPatient.issuer).where(
                    StudyPatient.collection == collection, StudyPatient.study_uid == study_uid
                )
            )
        ).one()
    owner: Patient = (found[0], found[1])
    deid.studies.put(collection, study_uid, owner)
    return owner
