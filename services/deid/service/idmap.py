"""A collection's ID map: the uploaded original → new PatientID rows, merged under the
rule that an assigned pseudonym never changes and no two patients share one."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from services.common.app import Conflict
from services.common.db import Database
from services.deid import domain, queries
from services.deid.models import IdMapEntry, PatientPseudonym


def _check(
    rows: list[domain.IdMapRow], existing: dict[str, str], assigned: list[tuple[str, str]]
) -> None:
    """Raise IdMapError for a row that would re-map an assigned patient or give a
    pseudonym to two patients (``assigned``: (original ID, pseudonym) pairs)."""
    final = dict(existing)
    final.update({r.id_old: r.id_new for r in rows})
    owners: dict[str, str] = {new: old for old, new in assigned}
    given: dict[str, list[str]] = {}
    for old, new in assigned:
        given.setdefault(old, []).append(new)
    for old, new in final.items():
        owners.setdefault(new, old)
    uses = Counter(final.values())
    for r in rows:
        before = given.get(r.id_old, [])
        if before and r.id_new not in before:
            raise domain.IdMapError(
                f"line {r.line}: this patient was already de-identified as {before[0]!r}; "
                "their id_new cannot change"
            )
        if owners.get(r.id_new, r.id_old) != r.id_old or uses[r.id_new] > 1:
            raise domain.IdMapError(
                f"line {r.line}: id_new {r.id_new!r} already belongs to another patient "
                "of this collection"
            )


async def load_id_map(db: Database, collection: str, text: str, by: str) -> int:
    """Merge an uploaded ``id_old,id_new`` CSV into the collection's ID map; returns the
    number of rows (raises domain.IdMapError naming the line, Conflict on a race).

    A patient may be re-mapped until an instance of theirs has been de-identified; after
    that their pseudonym is fixed, since published data already carries it.
    """
    await queries.known(db, collection)
    rows = domain.parse_id_map(text)
    try:
        async with db.session() as s, s.begin():
            existing = {
                r.id_old: r.id_new
                for r in await s.scalars(
                    select(IdMapEntry).where(IdMapEntry.collection == collection)
                )
            }
            assigned = [
                (r.original_id, r.pseudonym)
                for r in await s.scalars(
                    select(PatientPseudonym).where(PatientPseudonym.collection == collection)
                )
            ]
            _check(rows, existing, assigned)
            changed = [r for r in rows if existing.get(r.id_old) != r.id_new]
            # Delete before insert so that swapping two patients' values never trips the
            # unique (collection, id_new) constraint halfway.
            stale = [r.id_old for r in changed if r.id_old in existing]
            if stale:
                await s.execute(
                    delete(IdMapEntry).where(
                        IdMapEntry.collection == collection, IdMapEntry.id_old.in_(stale)
                    )
                )
            now = datetime.now(UTC)
            s.add_all(
                IdMapEntry(
                    collection=collection,
                    id_old=r.id_old,
                    id_new=r.id_new,
                    loaded_at=now,
                    loaded_by=by,
                )
                for r in changed
            )
    except IntegrityError as e:
        raise Conflict("the ID map was changed by someone else meanwhile; upload it again") from e
    return len(rows)
