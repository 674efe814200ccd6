"""What intake does: register collections, take a submission's files into quarantine, and
keep its copy of the licences the auth service announces.

Intake consumes one event, licence.updated; its other units of work start from HTTP
requests. Each function takes the ports it needs and stages its events in the same
transaction as its rows (outbox).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.bounds import LimitExceeded, Limits
from services.common.events import (
    CollectionUpdated,
    Event,
    Licence,
    LicenceUpdated,
)
from services.common.messaging import Transaction, UnitOfWork
from services.common.metrics import INSTANCES_HELD, INSTANCES_RECEIVED
from services.common.service import ServiceContext
from services.intake import domain
from services.intake.models import (
    Collection,
    HeldInstance,
    LicenceRecord,
    ReceivedInstance,
)
from services.intake.service import recording
from services.intake.service.recording import FileOutcome, SubmissionResult

log = logging.getLogger("imarc.intake")

#: Files of one submission in flight at once (read, parsed, written): bounds memory to a few
#: files whatever the submission's size, keeps both cores busy and leaves worker threads for
#: other requests.
PARALLEL = 8
#: Bytes of submitted files one submission holds in memory at once (with PARALLEL): small
#: files go eight at a time, big ones one by one; never more than this or one file
#: (IMARC_INTAKE_MAX_FILE_BYTES), whichever is larger.
IN_FLIGHT_BYTES = 256 * 1024 * 1024


class CollectionExists(Exception):
    pass


class StoreUnavailable(Exception):
    """The object store refused a write; nothing of the submission was recorded."""


class UploadUnreadable(Exception):
    """A submitted file whose bytes cannot be had (e.g. a damaged zip entry); the message
    is the hold reason."""


# -- licences --------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time intake stores is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def on_licence_updated(event: Event, uow: UnitOfWork) -> list[Event]:
    """Keep the licence as auth announced it (created, changed or deleted).

    Runs once per event (inbox); an event older than the one that last wrote the row
    (delivered late, after a retry) changes nothing.
    """
    session = uow.session
    data = event.payload(LicenceUpdated)
    row = await session.get(LicenceRecord, data.id)
    if row is None:
        row = LicenceRecord(id=data.id)
        session.add(row)
    elif _utc(row.announced_at) > _utc(event.time):
        log.info("licence %s: ignoring event %s, older than the one applied", data.id, event.id)
        return []
    row.name, row.url = data.name, data.url
    row.commercial_use, row.requires_approval = data.commercial_use, data.requires_approval
    row.deleted, row.announced_at = data.deleted, _utc(event.time)
    return []


async def announced_licences(session: AsyncSession) -> dict[str, Licence | None]:
    """The licences auth announced, by id; None for a deleted one (see domain.resolve_licence)."""
    rows = await session.scalars(select(LicenceRecord))
    return {r.id: None if r.deleted else Licence(id=r.id, name=r.name, url=r.url) for r in rows}


async def resolve_licence(session: AsyncSession, licence_id: str) -> Licence:
    """A collection's licence: auth's announced ones first, then the built-ins.
    Raises domain.UnknownLicence naming the known ids."""
    return domain.resolve_licence(licence_id, await announced_licences(session))


# -- collections -----------------------------------------------------------------------------


def collection_updated(c: Collection, source: str) -> Event:
    return CollectionUpdated(
        name=c.name,
        licence=Licence(id=c.licence_id, name=c.licence_name, url=c.licence_url),
        access=c.access,  # type: ignore[arg-type]
        description=c.description,
        doi=c.doi,
        require_id_map=c.require_id_map,
        citation=c.citation,
        data_usage_policy=c.data_usage_policy,
        face_reconstructable=c.face_reconstructable,
    ).event(source, subject=c.name)


async def get_collection(session: AsyncSession, name: str) -> Collection | None:
    return await session.get(Collection, name)


async def register_collection(
    tx: Transaction,
    source: str,
    *,
    name: str,
    licence: Licence,
    access: str,
    description: str,
    doi: str,
    require_id_map: bool,
    by: str,
    citation: str = "",
    data_usage_policy: str = "",
    face_reconstructable: bool = False,
) -> Collection:
    if await tx.session.get(Collection, name) is not None:
        raise CollectionExists(name)
    now = datetime.now(UTC)
    c = Collection(
        name=name,
        licence_id=licence.id,
        licence_name=licence.name,
        licence_url=licence.url,
        access=access,
        description=description,
        doi=doi,
        require_id_map=require_id_map,
        citation=citation,
        data_usage_policy=data_usage_policy,
        face_reconstructable=face_reconstructable,
        created_by=by,
        created_at=now,
        updated_at=now,
    )
    tx.session.add(c)
    await tx.session.flush()
    tx.emit(collection_updated(c, source))
    return c


async def update_collection(
    tx: Transaction, source: str, c: Collection, *, licence: Licence | None, **changes: Any
) -> Collection:
    """Apply the given changes (None means unchanged) and announce the new record.
    Raises ValueError when the changes would make a face-reconstructable collection public."""
    if licence is not None:
        c.licence_id, c.licence_name, c.licence_url = licence.id, licence.name, licence.url
    for field, value in changes.items():
        if value is not None:
            setattr(c, field, value)
    c.access = domain.access_with_face_policy(
        c.access, c.face_reconstructable, asked=changes.get("access") is not None
    )
    c.updated_at = datetime.now(UTC)
    tx.session.add(c)
    await tx.session.flush()
    tx.emit(collection_updated(c, source))
    return c


# -- submissions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """One submitted file: its name and how to get its bytes (blocking; runs in a worker
    thread, may raise UploadUnreadable)."""

    filename: str
    read: Callable[[], bytes]
    #: How many bytes reading it will hold in memory, as far as is known before (0: unknown,
    #: small); it counts against the submission's IN_FLIGHT_BYTES.
    size: int = 0


def _read_and_inspect(upload: Upload, limits: Limits) -> tuple[bytes | None, domain.Verdict]:
    """The file's bytes and the verdict on them; no bytes for a file past a limit (nothing
    of a refused bomb is stored) or one that could not be read."""
    try:
        data = upload.read()
    except UploadUnreadable as e:
        return None, domain.Held("unpack_failed", str(e))
    except LimitExceeded as e:
        return None, domain.Held(e.code, str(e))
    verdict = domain.inspect(data, limits)
    if isinstance(verdict, domain.Held) and verdict.code == LimitExceeded.code:
        return None, verdict
    return data, verdict


class ByteBudget:
    """Bytes of files in memory at once: a file waits until what the others hold leaves
    room for it (a file larger than the whole budget waits to be alone)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        size = min(size, self.capacity)
        async with self._changed:
            await self._changed.wait_for(lambda: self.held + size <= self.capacity)
            self.held += size
        try:
            yield
        finally:
            async with self._changed:
                self.held -= size
                self._changed.notify_all()


async def receive(
    ctx: ServiceContext,
    collection: str,
    site: str,
    submitted_by: str,
    uploads: Sequence[Upload],
    submission_id: str | None = None,
) -> SubmissionResult:
    """Take a submission's files into quarantine.

    Each file is read and its header checked in a worker thread, then written to the
    quarantine zone: an accepted instance under its stable key (a re-sent instance replaces
    itself), anything else under a fresh ``held/`` key, never dropped. Once every object is
    written, one transaction records the submission, upserts the received instances, adds
    the held files and stages their events.
    """
    secret = ctx.settings.secret.get_secret_value().encode()
    limits = Limits.of(ctx.settings)
    budget = ByteBudget(max(IN_FLIGHT_BYTES, limits.file_bytes))
    key_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
    finished = itertools.count()
    outcomes: list[FileOutcome | None] = [None] * len(uploads)
    todo = iter(enumerate(uploads))

    async def take(upload: Upload) -> FileOutcome:
        async with budget.hold(upload.size):
            return await _take(upload)

    async def _take(upload: Upload) -> FileOutcome:
        data, verdict = await asyncio.to_thread(_read_and_inspect, upload, limits)
        if isinstance(verdict, domain.Accepted):
            iid = domain.instance_id(
                secret, collection, verdict.patient_key, verdict.sop_instance_uid
            )
            key = domain.quarantine_key(collection, iid)
        else:
            iid = uuid.uuid4().hex
            key = domain.held_key(collection, iid)
        obj = None
        # Two files of one batch with the same instance: writes of a key take turns, so the
        # row recorded (the last write) describes the object that stays.
        async with key_locks[key]:
            if data is not None:
                try:
                    obj = await ctx.store.put("quarantine", key, data)
                except Exception as e:
                    raise StoreUnavailable(f"{type(e).__name__}: {e}") from e
            written = next(finished)
        return FileOutcome(upload.filename, iid, verdict, obj, written)

    async def worker() -> None:
        for i, upload in todo:  # workers share one iterator: each takes the next file
            outcomes[i] = await take(upload)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(PARALLEL, len(uploads))):
                group.create_task(worker())
    except ExceptionGroup as eg:
        refused = eg.subgroup(StoreUnavailable)
        if refused is None:
            raise
        log.error("quarantine writes for %s failed: %s", collection, refused.exceptions[0])
        raise refused.exceptions[0] from eg
    files = [f for f in outcomes if f is not None]
    result = SubmissionResult(submission_id or uuid.uuid4().hex, collection, site, files)
    result = await recording.record(ctx, result, submitted_by, joins=submission_id is not None)
    for f in result.files:
        if isinstance(f.verdict, domain.Held):
            INSTANCES_HELD.labels("intake", f.verdict.code).inc()
    if result.accepted:
        INSTANCES_RECEIVED.labels(collection).inc(len(result.accepted))
    return result


# -- reading ---------------------------------------------------------------------------------


async def counts(session: AsyncSession, collection: str) -> tuple[int, int]:
    received = await session.scalar(
        select(func.count())
        .select_from(ReceivedInstance)
        .where(ReceivedInstance.collection == collection)
    )
    held = await session.scalar(
        select(func.count()).select_from(HeldInstance).where(HeldInstance.collection == collection)
    )
    return int(received or 0), int(held or 0)


async def held_files(
    session: AsyncSession, collection: str, *, limit: int, offset: int
) -> list[HeldInstance]:
    rows = await session.scalars(
        select(HeldInstance)
        .where(HeldInstance.collection == collection)
        .order_by(HeldInstance.received_at, HeldInstance.filename)
        .limit(limit)
        .offset(offset)
    )
    return list(rows)
