"""Event handlers of deid and the unit-of-work functions its API calls.

``on_instance_received`` is a raw consumer: parsing and de-identifying run outside any
database transaction (in the process pool), and the effect — instance row, UID map, hold
cleared, ``instance.deidentified`` staged in the outbox — commits once per event id through
``Messaging.apply_once``. Redelivery therefore has exactly one effect.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import bindparam, delete, func, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, conflict_insert
from services.common.events import (
    CollectionUpdated,
    Event,
    InstanceDeidentified,
    InstanceHeld,
    InstanceReceived,
    ObjectRef,
)
from services.common.messaging import UnitOfWork
from services.common.metrics import DEID_SECONDS, INSTANCES_DEIDENTIFIED, INSTANCES_HELD
from services.common.projection import project_collection
from services.common.service import ServiceContext
from services.common.store import ObjectNotFound
from services.deid import domain, worker
from services.deid.engine import (
    DeidentificationError,
    Keys,
    Profile,
    date_offset_days,
)
from services.deid.models import (
    Base,
    Collection,
    Hold,
    IdMapEntry,
    Instance,
    PatientPseudonym,
    ProfileVersion,
    UidMapping,
)

log = logging.getLogger("imarc.deid")
T = TypeVar("T")

RECEIVED_QUEUE = "deid.on_instance_received"
COLLECTIONS_QUEUE = "deid.on_collection_updated"
#: Inbox name of curator releases (each release is its own synthetic received event).
RELEASE_CONSUMER = "deid.release"
_ALLOCATION_ATTEMPTS = 20
_PSEUDONYM_CACHE = 100_000


class CollectionNotKnown(RuntimeError):
    """An instance arrived before its collection's ``collection.updated``; retried."""


@dataclass(frozen=True)
class Outcome:
    """What became of one received event."""

    instance_id: str
    outcome: Literal["deidentified", "held", "skipped"]
    reason: str | None = None
    profile_version: int | None = None
    object: ObjectRef | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _upsert(
    session: AsyncSession, model: type[Base], rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    stmt = _upsert_statement(model, dialect, tuple(keys), tuple(rows[0]))
    await session.execute(stmt, list(rows))


@functools.lru_cache(maxsize=64)
def _upsert_statement(
    model: type[Base], dialect: str, keys: tuple[str, ...], columns: tuple[str, ...]
) -> Any:
    """Built once per shape: constructing the statement costs more than running it."""
    table = model.__table__
    stmt = conflict_insert(dialect, table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: stmt.excluded[c] for c in columns if c not in keys},
    )


# -- profiles -----------------------------------------------------------------------


def _profile_of(row: ProfileVersion) -> Profile:
    return Profile.from_dict(row.body)


async def current_profile(session: AsyncSession, collection: str) -> ProfileVersion | None:
    """The highest version of a collection's profile (None if the collection is unknown)."""
    result: ProfileVersion | None = await session.scalar(
        select(ProfileVersion)
        .where(ProfileVersion.collection == collection)
        .order_by(ProfileVersion.version.desc())
        .limit(1)
    )
    return result


def _add_profile(
    session: AsyncSession, collection: str, profile: Profile, by: str
) -> ProfileVersion:
    row = ProfileVersion(
        collection=collection,
        version=profile.version,
        body=profile.to_dict(),
        digest=profile.digest(),
        created_at=_now(),
        created_by=by,
    )
    session.add(row)
    return row


async def profile_versions(db: Database, collection: str) -> list[ProfileVersion]:
    async with db.session() as s:
        rows = await s.scalars(
            select(ProfileVersion)
            .where(ProfileVersion.collection == collection)
            .order_by(ProfileVersion.version)
        )
        return list(rows)


async def collection_exists(db: Database, collection: str) -> bool:
    async with db.session() as s:
        return await s.get(Collection, collection) is not None


async def get_profile(db: Database, collection: str) -> ProfileVersion | None:
    async with db.session() as s:
        return await current_profile(s, collection)


async def update_profile(
    db: Database, collection: str, changes: dict[str, Any], by: str
) -> ProfileVersion | None:
    """Store the next profile version with ``changes`` (raises domain.ProfileError).

    Returns the current version unchanged when the update changes nothing, None when the
    collection is unknown; a concurrent update makes the version key collide
    (IntegrityError), which the API reports as a conflict.
    """
    async with db.session() as s, s.begin():
        row = await current_profile(s, collection)
        if row is None:
            return None
        candidate = domain.updated_profile(_profile_of(row), changes)
        if candidate is None:
            return row
        new = _add_profile(s, collection, candidate, by)
        await s.flush()
    return new


# -- collections ----------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def collection_keys(keys: Keys, collection: str) -> Keys:
    """Each collection re-roots UIDs under its own derived key, so the same file submitted
    to two collections yields two distinct sets of UIDs (no cross-collection linkage)."""
    derived = hmac.new(keys.secret, b"imarc-uid-collection\x00" + collection.encode(), "sha256")
    return Keys(derived.digest(), keys.uid_root)


async def on_collection_updated(event: Event, uow: UnitOfWork) -> list[Event]:
    """Keep deid's copy of the collection and give a new collection its first profile.

    A change of the collection's ``require_id_map`` makes a new profile version; other
    profile settings are the manager's, through the profile API. An announcement older
    than the record kept changes nothing.
    """
    session = uow.session
    known = await session.get(Collection, event.payload(CollectionUpdated).name)
    previous = known.require_id_map if known is not None else None
    c = await project_collection(session, Collection, event)
    if c is None:
        return []
    row = await current_profile(session, c.name)
    if row is None:
        _add_profile(session, c.name, domain.initial_profile(c.require_id_map), event.source)
    elif previous is not None and previous != c.require_id_map:
        bumped = domain.with_require_id_map(_profile_of(row), c.require_id_map)
        if bumped is not None:
            _add_profile(session, c.name, bumped, event.source)
    return []


# -- pseudonyms -----------------------------------------------------------------------


@dataclass(frozen=True)
class Pseudonym:
    value: str | None
    hold_reason: str | None = None


async def _pseudonym_taken(s: AsyncSession, collection: str, value: str, owner: str) -> bool:
    used = await s.scalar(
        select(PatientPseudonym.original_id).where(
            PatientPseudonym.collection == collection, PatientPseudonym.pseudonym == value
        )
    )
    if used is not None and used != owner:
        return True
    mapped = await s.scalar(
        select(IdMapEntry.id_old).where(
            IdMapEntry.collection == collection, IdMapEntry.id_new == value
        )
    )
    return mapped is not None and mapped != owner


async def resolve_pseudonym(
    db: Database, collection: str, original_id: str, require_id_map: bool
) -> Pseudonym:
    """The patient's pseudonym: the one already given, else the ID map's entry, else (when
    the profile does not require a map) the next generated ``<collection>-NNNN``.

    Allocation is safe under concurrency: unique constraints on (collection, seq) and
    (collection, pseudonym) make a racing transaction fail, and it starts again.
    """
    for _ in range(_ALLOCATION_ATTEMPTS):
        try:
            async with db.session() as s, s.begin():
                row = await s.get(PatientPseudonym, (collection, original_id))
                if row is not None:
                    return Pseudonym(row.pseudonym)
                mapped = await s.get(IdMapEntry, (collection, original_id))
                if mapped is not None:
                    if await _pseudonym_taken(s, collection, mapped.id_new, original_id):
                        return Pseudonym(
                            None,
                            f"the ID map gives this patient {mapped.id_new!r}, which another "
                            "patient already has; correct the ID map and release it",
                        )
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
                    while await _pseudonym_taken(s, collection, value, original_id):
                        seq += 1
                        value = domain.generated_pseudonym(collection, seq)
                    source = "generated"
                s.add(
                    PatientPseudonym(
                        collection=collection,
                        original_id=original_id,
                        pseudonym=value,
                        seq=seq,
                        source=source,
                        created_at=_now(),
                    )
                )
            return Pseudonym(value)
        except IntegrityError:
            log.debug("pseudonym allocation for %s raced; trying again", collection)
            await asyncio.sleep(0.01)
    raise RuntimeError(f"could not allocate a pseudonym in {collection} after many attempts")


PROFILE_TTL = 2.0


async def _cached_profile(ctx: ServiceContext, collection: str) -> Profile | None:
    """The collection's current profile, remembered for a moment: a series of hundreds of
    instances then reads it once. A change through this process's API is seen at once
    (update_profile clears the entry); one made through another replica within
    PROFILE_TTL seconds, and every output records the version it was made with."""
    cache: dict[str, tuple[float, Profile]] = ctx.state.setdefault("profiles", {})
    hit = cache.get(collection)
    now = time.monotonic()
    if hit is not None and now - hit[0] < PROFILE_TTL:
        return hit[1]
    async with ctx.db.session() as s:
        # A profile exists exactly when collection.updated has been seen.
        row = await current_profile(s, collection)
    if row is None:
        return None
    profile = _profile_of(row)
    cache[collection] = (now, profile)
    return profile


async def _cached_pseudonym(
    ctx: ServiceContext, collection: str, original_id: str, require_id_map: bool
) -> Pseudonym:
    # A patient's pseudonym never changes once given (load_id_map refuses to re-map an
    # assigned patient), so every process may remember it: a series of hundreds of
    # instances then costs one allocation transaction, not hundreds.
    cache: dict[tuple[str, str], str] = ctx.state.setdefault("pseudonyms", {})
    known = cache.get((collection, original_id))
    if known is not None:
        return Pseudonym(known)
    found = await resolve_pseudonym(ctx.db, collection, original_id, require_id_map)
    if found.value is not None:
        if len(cache) >= _PSEUDONYM_CACHE:
            cache.clear()
        cache[(collection, original_id)] = found.value
    return found


# -- the de-identification pipeline ------------------------------------------------------


_LATEST_RECEIVED = (
    select(Hold.received_at, literal("hold"))
    .where(Hold.instance_id == bindparam("instance_id"))
    .union_all(
        select(Instance.received_at, literal("instance")).where(
            Instance.instance_id == bindparam("instance_id")
        )
    )
)


async def _is_current(
    s: AsyncSession, instance_id: str, received_at: datetime, require_hold: bool
) -> bool:
    """Whether this event may still decide the instance's state.

    A release only acts on an instance that is still held; an older received event that is
    redelivered late must not undo the outcome of a newer submission of the same instance.
    """
    latest = await s.execute(_LATEST_RECEIVED, {"instance_id": instance_id})
    seen = {kind: _aware(at) for at, kind in latest.all()}
    if require_hold:
        return "hold" in seen
    return not seen or received_at >= max(seen.values())


async def _record_hold(
    ctx: ServiceContext,
    consumer: str,
    event: Event,
    received: InstanceReceived,
    reason: str,
    require_hold: bool,
) -> Outcome:
    current = True

    async def effect(uow: UnitOfWork) -> list[Event]:
        nonlocal current
        s = uow.session
        current = await _is_current(s, received.instance_id, event.time, require_hold)
        if not current:
            return []
        payload = received.model_dump(mode="json")
        payload["release_pixel_hold"] = False
        await _upsert(
            s,
            Hold,
            [
                {
                    "instance_id": received.instance_id,
                    "collection": received.collection,
                    "reason": reason,
                    "kind": domain.reason_kind(reason),
                    "received": payload,
                    "received_at": event.time,
                    "held_at": _now(),
                    "event_id": event.id,
                }
            ],
            ["instance_id"],
        )
        held = InstanceHeld(
            instance_id=received.instance_id,
            collection=received.collection,
            site=received.site,
            filename=received.filename,
            stage="deid",
            reason=reason,
        )
        return [held.event(ctx.source, subject=received.instance_id)]

    applied = await ctx.messaging.apply_once(consumer, event, effect)
    if not (applied and current):
        return Outcome(received.instance_id, "skipped")
    INSTANCES_HELD.labels("deid", domain.reason_kind(reason)).inc()
    log.info(
        "held %s: %s",
        received.instance_id,
        reason,
        extra={"service": "deid", "event_id": event.id, "collection": received.collection},
    )
    return Outcome(received.instance_id, "held", reason=reason)


async def _in_worker(ctx: ServiceContext, fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(ctx.executor, fn, *args)


async def process_received(
    ctx: ServiceContext,
    consumer: str,
    event: Event,
    *,
    released_by: str | None = None,
) -> Outcome:
    """De-identify the instance an ``instance.received`` event names, or hold it."""
    received: InstanceReceived = event.payload(InstanceReceived)
    collection, instance_id = received.collection, received.instance_id
    release = released_by is not None
    profile = await _cached_profile(ctx, collection)
    if profile is None:
        raise CollectionNotKnown(
            f"collection {collection!r} is not known to deid yet (its collection.updated "
            "has not arrived); the event will be retried"
        )

    async def hold(reason: str) -> Outcome:
        return await _record_hold(ctx, consumer, event, received, reason, release)

    source = worker.Source(
        ctx.state["store_url"],
        ctx.settings.store_fsync,
        received.object.key,
        received.object.sha256,
    )
    try:
        original_id = await _in_worker(ctx, worker.inspect, source)
    except ObjectNotFound:
        return await hold(domain.QUARANTINE_MISSING)
    except worker.ChecksumMismatch:
        return await hold(domain.CHECKSUM_MISMATCH)
    except DeidentificationError as e:
        return await hold(domain.failure_reason(e))
    pseudonym = await _cached_pseudonym(ctx, collection, original_id, profile.require_id_map)
    if pseudonym.value is None:
        return await hold(pseudonym.hold_reason or domain.NO_ID_MAP_ENTRY)
    keys = collection_keys(ctx.state["keys"], collection)
    fields = {
        "collection": collection,
        "patient_pseudonym": pseudonym.value,
        "keys": keys,
        "profile": profile,
        "date_offset_days": date_offset_days(
            keys, collection, original_id, profile.date_shift_scope
        ),
        "release_pixel_hold": received.release_pixel_hold,
    }
    started = time.perf_counter()
    try:
        result, stored = await _in_worker(ctx, worker.deidentify_object, source, fields)
    except BrokenExecutor:
        raise  # the pool died, not the file: retry on a fresh delivery
    except ObjectNotFound:
        return await hold(domain.QUARANTINE_MISSING)
    except worker.ChecksumMismatch:
        return await hold(domain.CHECKSUM_MISMATCH)
    except Exception as e:
        log.warning("de-identification of %s failed", instance_id, exc_info=True)
        return await hold(domain.failure_reason(e))
    finally:
        DEID_SECONDS.observe(time.perf_counter() - started)
    if stored is None:
        return await hold(result.held_reason or "the engine produced no output")

    key = stored.key
    ref = ObjectRef(zone="curation", key=key, size=stored.size, sha256=stored.sha256)
    ids = result.deidentified
    current = True

    async def effect(uow: UnitOfWork) -> list[Event]:
        nonlocal current
        s = uow.session
        current = await _is_current(s, instance_id, event.time, release)
        if not current:
            return []
        await _upsert(
            s,
            Instance,
            [
                {
                    "instance_id": instance_id,
                    "collection": collection,
                    "patient_id": pseudonym.value,
                    "study_instance_uid": ids["StudyInstanceUID"],
                    "series_instance_uid": ids["SeriesInstanceUID"],
                    "sop_instance_uid": ids["SOPInstanceUID"],
                    "sop_class_uid": ids.get("SOPClassUID") or "",
                    "modality": ids.get("Modality") or "",
                    "curation_key": key,
                    "size": stored.size,
                    "sha256": stored.sha256,
                    "profile_version": profile.version,
                    "profile_digest": profile.digest(),
                    "audit": domain.audit_rows(result.audit),
                    "received_at": event.time,
                    "deidentified_at": _now(),
                    "released_by": released_by,
                    "event_id": event.id,
                }
            ],
            ["instance_id"],
        )
        await _upsert(
            s,
            UidMapping,
            [
                {"collection": collection, "old": old, "new": new}
                for old, new in sorted(result.uid_map.items())
                if old != new
            ],
            ["collection", "old"],
        )
        await s.execute(delete(Hold).where(Hold.instance_id == instance_id))
        done = InstanceDeidentified(
            instance_id=instance_id,
            collection=collection,
            site=received.site,
            object=ref,
            patient_id=pseudonym.value or "",
            study_instance_uid=ids["StudyInstanceUID"],
            series_instance_uid=ids["SeriesInstanceUID"],
            sop_instance_uid=ids["SOPInstanceUID"],
            sop_class_uid=ids.get("SOPClassUID") or "",
            modality=ids.get("Modality") or "",
            header=result.header_json,
            profile_version=profile.version,
        )
        return [done.event(ctx.source, subject=instance_id)]

    applied = await ctx.messaging.apply_once(consumer, event, effect)
    if not (applied and current):
        return Outcome(instance_id, "skipped")
    INSTANCES_DEIDENTIFIED.labels(collection).inc()
    return Outcome(instance_id, "deidentified", profile_version=profile.version, object=ref)


async def on_instance_received(event: Event, *, ctx: ServiceContext) -> None:
    """Consumer ``deid.on_instance_received`` (raw: heavy work outside a transaction)."""
    if await ctx.messaging.seen(RECEIVED_QUEUE, event.id):
        return
    await process_received(ctx, RECEIVED_QUEUE, event)


async def release(
    ctx: ServiceContext, collection: str, instance_id: str, by: str
) -> Outcome | None:
    """Re-run a held instance (None if it is not held in ``collection``).

    A pixel hold is released past the pixel screen — that is what the curator reviewed;
    any other hold (e.g. a missing ID map entry) is simply tried again.
    """
    async with ctx.db.session() as s:
        held = await s.get(Hold, instance_id)
    if held is None or held.collection != collection:
        return None
    payload = dict(held.received)
    payload["release_pixel_hold"] = domain.releases_pixel_hold(held.reason)
    event = InstanceReceived.model_validate(payload).event(ctx.source, subject=instance_id)
    log.info("%s releases %s (%s)", by, instance_id, held.kind, extra={"service": "deid"})
    return await process_received(ctx, RELEASE_CONSUMER, event, released_by=by)


# -- holds, audit, maps -----------------------------------------------------------------


async def holds(db: Database, collection: str) -> list[Hold]:
    async with db.session() as s:
        rows = await s.scalars(
            select(Hold).where(Hold.collection == collection).order_by(Hold.held_at)
        )
        return list(rows)


async def instance(db: Database, instance_id: str) -> Instance | None:
    async with db.session() as s:
        return await s.get(Instance, instance_id)


async def load_id_map(db: Database, collection: str, rows: list[domain.IdMapRow], by: str) -> int:
    """Merge uploaded rows into the collection's ID map (raises domain.IdMapError).

    A patient may be re-mapped until an instance of theirs has been de-identified; after
    that their pseudonym is fixed, since published data already carries it. No two
    patients may end up with the same pseudonym.
    """
    async with db.session() as s, s.begin():
        existing = {
            r.id_old: r
            for r in await s.scalars(select(IdMapEntry).where(IdMapEntry.collection == collection))
        }
        assigned = {
            r.original_id: r.pseudonym
            for r in await s.scalars(
                select(PatientPseudonym).where(PatientPseudonym.collection == collection)
            )
        }
        final = {old: e.id_new for old, e in existing.items()}
        final.update({r.id_old: r.id_new for r in rows})
        owners: dict[str, str] = {new: old for old, new in assigned.items()}
        for old, new in final.items():
            owners.setdefault(new, old)
        uses = Counter(final.values())
        for r in rows:
            given = assigned.get(r.id_old)
            if given is not None and given != r.id_new:
                raise domain.IdMapError(
                    f"line {r.line}: this patient was already de-identified as {given!r}; "
                    "their id_new cannot change"
                )
            if owners.get(r.id_new, r.id_old) != r.id_old or uses[r.id_new] > 1:
                raise domain.IdMapError(
                    f"line {r.line}: id_new {r.id_new!r} already belongs to another patient "
                    "of this collection"
                )
        changed = [
            r for r in rows if r.id_old not in existing or existing[r.id_old].id_new != r.id_new
        ]
        # Delete before insert so that swapping two patients' values never trips the
        # unique (collection, id_new) constraint halfway.
        stale = [r.id_old for r in changed if r.id_old in existing]
        if stale:
            await s.execute(
                delete(IdMapEntry).where(
                    IdMapEntry.collection == collection, IdMapEntry.id_old.in_(stale)
                )
            )
        now = _now()
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
    return len(rows)


async def map_pairs(
    db: Database, collection: str, which: Literal["patients", "uids"], page: int = 5000
) -> AsyncIterator[list[tuple[str, str]]]:
    """Pages of (old, new) pairs, each read in its own short session so a slow download
    never holds a database connection."""
    if which == "patients":
        key, new, where = (
            PatientPseudonym.original_id,
            PatientPseudonym.pseudonym,
            PatientPseudonym.collection == collection,
        )
    else:
        key, new, where = UidMapping.old, UidMapping.new, UidMapping.collection == collection
    after: str | None = None
    while True:
        query = select(key, new).where(where).order_by(key).limit(page)
        if after is not None:
            query = query.where(key > after)
        async with db.session() as s:
            rows = [(str(a), str(b)) for a, b in (await s.execute(query)).all()]
        if not rows:
            return
        yield rows
        if len(rows) < page:
            return
        after = rows[-1][0]
