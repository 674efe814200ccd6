"""Wires the deid service: its typed dependencies (keys, caches, the CPU workers), tables,
migrations, routes and consumers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Executor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from services.common.db import Database
from services.common.events import CollectionUpdated, InstanceReceived
from services.common.housekeeping import repeat, stop
from services.common.messaging import Messaging, UnitOfWork
from services.common.service import Consumer, ServiceContext, ServiceSpec
from services.common.store import ObjectStore
from services.deid import consumers as on
from services.deid.engine import Keys
from services.deid.models import metadata
from services.deid.service.profiles import ProfileCache
from services.deid.service.pseudonyms import PseudonymCache
from services.deid.service.studies import StudyOwners
from services.deid.worker import Destination

T = TypeVar("T")
log = logging.getLogger("imarc.deid")


@dataclass
class Deid:
    """What deid's use cases and routes work with."""

    db: Database
    messaging: Messaging
    store: ObjectStore
    #: CloudEvents ``source`` of the events deid emits
    source: str
    #: where the CPU workers write curation objects (the same store, opened by URL)
    destination: Destination
    #: the CPU worker pool, which the runtime starts after building this object
    executor: Callable[[], Executor | None]
    #: how many instances are de-identified at once
    workers: int = 1
    #: the secret and UID root the keys are made from at start
    secret: str = field(default="", repr=False)
    uid_root: str = ""
    profiles: ProfileCache = field(default_factory=ProfileCache)
    pseudonyms: PseudonymCache = field(default_factory=PseudonymCache)
    studies: StudyOwners = field(default_factory=StudyOwners)
    #: a read replica attaches nothing (the primary's holds arrive by replication)
    replica: bool = False
    _keys: Keys | None = field(default=None, repr=False)
    _evidence: asyncio.Task[None] | None = field(default=None, repr=False)
    _background: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    @property
    def keys(self) -> Keys:
        """UID and date-offset keys (from IMARC_SECRET)."""
        if self._keys is None:
            raise RuntimeError("deid has not started: its keys are made by on_start")
        return self._keys

    def uow(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A unit of work: state changes and the events emitted commit together."""
        return self.messaging.transaction()

    def background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run long work (a collection scanned again) after the request that asked for
        it has been answered; stopping the service cancels it."""
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def run_cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a CPU worker process."""
        return await asyncio.get_running_loop().run_in_executor(self.executor(), fn, *args)


def build(ctx: ServiceContext) -> Deid:
    settings = ctx.settings
    return Deid(
        db=ctx.db,
        messaging=ctx.messaging,
        store=ctx.store,
        source=ctx.source,
        # resolved once: the workers open the same store from its URL
        destination=Destination(settings.resolved_store_url(), settings.store_fsync),
        executor=lambda: ctx.executor,
        workers=settings.cpu_workers(),
        secret=settings.secret.get_secret_value(),
        uid_root=settings.uid_root,
        replica=settings.site_role == "replica",
    )


async def on_start(deid: Deid) -> None:
    try:
        deid._keys = Keys(deid.secret.encode(), deid.uid_root)
    except ValueError as e:
        raise RuntimeError(
            f"deid cannot start: {e}; set IMARC_SECRET (at least 16 characters, the same on "
            "every deid process) and IMARC_UID_ROOT"
        ) from e
    if not deid.replica:
        deid._evidence = asyncio.create_task(_attach_evidence(deid), name="deid-ocr-evidence")


async def _attach_evidence(deid: Deid, every: float = 5.0) -> None:
    """Attach OCR evidence to pixel holds off the event path (service/pixel_review.py)."""
    from services.deid.service.pixel_review import attach_pending_evidence

    await repeat(
        lambda: attach_pending_evidence(deid), every, "attaching OCR evidence to pixel holds", log
    )


async def on_stop(deid: Deid) -> None:
    await stop(deid._evidence)
    deid._evidence = None
    for task in list(deid._background):
        await stop(task)


def consumers(deid: Deid) -> Sequence[Consumer]:
    return (
        Consumer(
            on.RECEIVED_QUEUE,
            (InstanceReceived.TYPE,),
            raw=partial(on.on_instance_received, deid=deid),
            # four deliveries per worker keep the pool busy while others wait on the database
            concurrency=deid.workers * 4,
        ),
        Consumer(on.COLLECTIONS_QUEUE, (CollectionUpdated.TYPE,), handler=on.on_collection_updated),
    )


def spec() -> ServiceSpec[Deid]:
    # the routes name ``Deid`` (api/deps.py), so they are imported once it exists
    from services.deid.api import holds, idmap, instances, pixels, profiles, scans

    return ServiceSpec(
        name="deid",
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        build=build,
        routers=(
            profiles.router,
            idmap.router,
            holds.router,
            pixels.router,
            instances.router,
            scans.router,
        ),
        consumers=consumers,
        on_start=on_start,
        on_stop=on_stop,
        cpu_workers=True,
    )
