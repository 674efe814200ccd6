"""Patient pseudonyms: the one already given, else the ID map's entry, else the next
generated ``<collection>-NNNN`` — allocated once per patient and remembered."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database
from services.deid import domain
from services.deid.models import IdMapEntry, PatientPseudonym

if TYPE_CHECKING:
    from services.deid.bootstrap import Deid

log = logging.getLogger("imarc.deid")

#: A patient: (PatientID, IssuerOfPatientID), both as the original file gives them.
Patient = tuple[str, str]

_ALLOCATION_ATTEMPTS = 20
_CACHE_SIZE = 100_000


@dataclass(frozen=True)
class Pseudonym:
    value: str | None
    hold_reason: str | None = None


async def _taken(s: AsyncSession, collection: str, value: str, owner: Patient) -> bool:
    used = (
        await s.execute(
            select(PatientPseudonym.original_id, PatientPseudonym.issuer).where(
                PatientPseudonym.collection == collection, PatientPseudonym.pseudonym == value
            )
        )
    ).first()
    if used is not None and (used[0], used[1]) != owner:
        return True
    mapped = await s.scalar(
        select(IdMapEntry.id_old).where(
            IdMapEntry.collection == collection, IdMapEntry.id_new == value
        )
    )
    return mapped is not None and mapped != owner[0]


async def resolve_pseudonym(
    db: Database, collection: str, original_id: str, require_id_map: bool, issuer: str = ""
) -> Pseudonym:
    """The patient's pseudonym: the one already given, else the ID map's entry, else (when
    the profile does not require a map) the next generated ``<collection>-NNNN``.

    A patient is ``original_id`` under ``issuer`` (IssuerOfPatientID): the same ID from
    two issuers gets two pseudonyms. ID map rows name a PatientID alone; when two issuers
    share one, the patient who comes second is held (the value is taken).

    Allocation is safe under concurrency: unique constraints on (collection, seq) and
    (collection, pseudonym) make a racing transaction fail, and it starts again.
    """
    owner: Patient = (original_id, issuer)
    for _ in range(_ALLOCATION_ATTEMPTS):
        try:
            async with db.session() as s, s.begin():
                row = await s.get(PatientPseudonym, (collection, original_id, issuer))
                if row is not None:
                    return Pseudonym(row.pseudonym)
                mapped = await s.get(IdMapEntry, (collection, original_id))
                if mapped is not None:
                    if await _taken(s, collection, mapped.id_new, owner):
                        return Pseudonym(None, domain.id_map_value_taken(mapped.id_new))
                    value, seq, source = mapped.id_new, None, "idmap"
                elif require_id_map:
                    return Pseudonym(None, domain.NO_ID_MAP_ENTRY)
                else:
                    top = await s.scalar(
                        select(func.max(PatientPseudonym.seq)).where(
                            PatientPseudonym.collection == collection
                        )
                    )
                    seq = (top or 0) + 1
                    value = domain.generated_pseudonym(collection, seq)
                    while await _taken(s, collection, value, owner):
                        seq += 1
                        value = domain.generated_pseudonym(collection, seq)
                    source = "generated"
                s.add(
                    PatientPseudonym(
                        collection=collection,
                        original_id=original_id,
                        issuer=issuer,
                        pseudonym=value,
                        seq=seq,
                        source=source,
                        created_at=datetime.now(UTC),
                    )
                )
            return Pseudonym(value)
        except IntegrityError:
            log.debug("pseudonym allocation for %s raced; trying again", collection)
            await asyncio.sleep(0.01)
    raise RuntimeError(f"could not allocate a pseudonym in {collection} after many attempts")


@dataclass
class PseudonymCache:
    """Pseudonyms this process has seen. A patient's pseudonym never changes once given
    (the ID map refuses to re-map an assigned patient), so every process may remember it:
    a series of hundreds of instances then costs one allocation transaction."""

    size: int = _CACHE_SIZE
    _known: dict[tuple[str, Patient], str] = field(default_factory=dict)

    def get(self, collection: str, patient: Patient) -> str | None:
        return self._known.get((collection, patient))

    def put(self, collection: str, patient: Patient, pseudonym: str) -> None:
        if len(self._known) >= self.size:
            self._known.clear()
        self._known[(collection, patient)] = pseudonym


async def pseudonym_for(
    deid: Deid, collection: str, patient: Patient, require_id_map: bool
) -> Pseudonym:
    known = deid.pseudonyms.get(collection, patient)
    if known is not None:
        return Pseudonym(known)
    original_id, issuer = patient
    found = await resolve_pseudonym(deid.db, collection, original_id, require_id_map, issuer)
    if found.value is not None:
        deid.pseudonyms.put(collection, patient, found.value)
    return found
