"""A collection's de-identification profile: its versions, a manager's changes, the first
version a new collection gets, and the short-lived cache the pipeline reads it through."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.app import Conflict
from services.common.events import CollectionUpdated, Event
from services.common.messaging import UnitOfWork
from services.common.projection import project_collection
from services.deid import domain, queries
from services.deid.engine import Profile
from services.deid.models import Collection, ProfileVersion

if TYPE_CHECKING:
    from services.deid.bootstrap import Deid

#: How long a process may use a profile it read before reading it again.
PROFILE_TTL = 2.0


def profile_of(row: ProfileVersion) -> Profile:
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


def add_profile(
    session: AsyncSession, collection: str, profile: Profile, by: str
) -> ProfileVersion:
    row = ProfileVersion(
        collection=collection,
        version=profile.version,
        body=profile.to_dict(),
        digest=profile.digest(),
        created_at=datetime.now(UTC),
        created_by=by,
    )
    session.add(row)
    return row


@dataclass
class ProfileCache:
    """Each collection's current profile, remembered for :data:`PROFILE_TTL` seconds: a
    series of hundreds of instances then reads it once. A change through this process's
    API is seen at once (it forgets the entry); one made through another replica within
    the TTL is not, and every output records the version it was made with."""

    ttl: float = PROFILE_TTL
    _entries: dict[str, tuple[float, Profile]] = field(default_factory=dict)

    def get(self, collection: str) -> Profile | None:
        hit = self._entries.get(collection)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return None

    def put(self, collection: str, profile: Profile) -> None:
        self._entries[collection] = (time.monotonic(), profile)

    def forget(self, collection: str) -> None:
        self._entries.pop(collection, None)


async def profile_for(deid: Deid, collection: str) -> Profile | None:
    """The collection's current profile (through the cache); None while the collection's
    ``collection.updated`` has not arrived (a profile exists exactly when it has)."""
    cached = deid.profiles.get(collection)
    if cached is not None:
        return cached
    async with deid.db.session() as s:
        row = await current_profile(s, collection)
    if row is None:
        return None
    profile = profile_of(row)
    deid.profiles.put(collection, profile)
    return profile


async def update_profile(
    deid: Deid, collection: str, changes: dict[str, Any], by: str
) -> ProfileVersion:
    """Store the next profile version with ``changes`` (raises domain.ProfileError).

    Returns the current version unchanged when the update changes nothing; a concurrent
    update makes the version key collide, which is a conflict.
    """
    try:
        async with deid.db.session() as s, s.begin():
            row = await current_profile(s, collection)
            if row is None:
                raise _NoProfile
            candidate = domain.updated_profile(profile_of(row), changes)
            if candidate is None:
                return row
            new = add_profile(s, collection, candidate, by)
            await s.flush()
    except _NoProfile:
        # asked once the session is closed: with SQLite it holds the only connection
        raise await queries.no_profile(deid.db, collection) from None
    except IntegrityError as e:
        raise Conflict(
            "the profile was changed by someone else meanwhile; read it and try again"
        ) from e
    finally:
        deid.profiles.forget(collection)
    return new


class _NoProfile(Exception):
    pass


async def collection_updated(uow: UnitOfWork, event: Event) -> None:
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
        return
    row = await current_profile(session, c.name)
    if row is None:
        add_profile(session, c.name, domain.initial_profile(c.require_id_map), event.source)
    elif previous is not None and previous != c.require_id_map:
        bumped = domain.with_require_id_map(profile_of(row), c.require_id_map)
        if bumped is not None:
            add_profile(session, c.name, bumped, event.source)
