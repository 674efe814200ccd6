"""Taking a submission's files into quarantine: each file read and its header checked in
a worker thread, written to the quarantine zone, and the whole batch recorded in one
transaction with its events. HTTP uploads, STOW-RS and C-STORE all come through here."""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from services.common.bounds import LimitExceeded, Limits
from services.common.metrics import INSTANCES_HELD, INSTANCES_RECEIVED
from services.common.service import ServiceContext
from services.intake import domain
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


class StoreUnavailable(Exception):
    """The object store refused a write; nothing of the submission was recorded."""


class UploadUnreadable(Exception):
    """A submitted file whose bytes cannot be had (e.g. a damaged zip entry); the message
    is the hold reason."""


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
    via: str = "http",
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
    result = await recording.record(
        ctx, result, submitted_by, joins=submission_id is not None, via=via
    )
    for f in result.files:
        if isinstance(f.verdict, domain.Held):
            INSTANCES_HELD.labels("intake", f.verdict.code).inc()
    if result.accepted:
        INSTANCES_RECEIVED.labels(collection).inc(len(result.accepted))
    return result
