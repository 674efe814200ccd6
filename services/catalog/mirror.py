"""A mirror site follows another imarc's feed and keeps an exact copy of what it may see.

For each feed entry, in order: a publication's objects are fetched (getSingleImage), each
checked against the size and SHA-256 the entry gives and put in this site's public zone
under the same key; a withdrawal's objects are removed. Then one transaction emits the
local event the entry becomes (its own services index it, its own feed re-publishes it)
and moves the source's cursor past the entry, on the condition that the cursor still is
the one this step started from. So killed at any moment and restarted, the mirror resumes
after the last entry committed: an entry is applied once (its event id is derived from the
entry, so even a repeat is one effect per inbox), and none is skipped. Objects are keyed
by UIDs and content-checked, so fetching one again is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.catalog.background import Background
from services.catalog.domain.mirror import local_event, wanted
from services.catalog.models import mirror_series, mirror_sources
from services.common.db import Database
from services.common.messaging import Messaging
from services.common.persistence import upsert
from services.common.store import ObjectNotFound, ObjectStore

log = logging.getLogger("imarc.catalog.mirror")
PAGE = 50
SINGLE_IMAGE = "/nbia-api/services/v4/getSingleImage"


class MirrorError(Exception):
    """A step that cannot be applied now (the source is away, an object is wrong)."""


class Gone(MirrorError):
    """The source no longer serves an object of the entry being applied."""


class _Moved(Exception):
    """Another follower applied the entry first: reload the source."""


class Follower(Background):
    """Follows every registered source of this mirror site, one entry at a time."""

    def __init__(
        self,
        db: Database,
        messaging: Messaging,
        store: ObjectStore,
        source: str,
        *,
        idle: float = 0.5,
        parallel: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.db, self.messaging, self.store, self.source = db, messaging, store, source
        self.idle = idle
        self.parallel = parallel
        self.transport = transport
        self._wake = asyncio.Event()
        self._http: httpx.AsyncClient | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    def wake(self) -> None:
        self._wake.set()

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=self.transport,
                timeout=httpx.Timeout(30.0, read=300.0),
                limits=httpx.Limits(max_connections=self.parallel * 2),
            )
        return self._http

    async def run(self) -> None:
        while True:
            self._wake.clear()
            busy = False
            try:
                busy = await self.once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the mirror could not follow its sources; retrying")
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle)

    async def once(self) -> bool:
        """One page of every source still to follow; True when anything was applied."""
        async with self.db.session() as s:
            rows = (
                (
                    await s.execute(
                        select(mirror_sources).where(
                            mirror_sources.c.follow | ~mirror_sources.c.caught_up
                        )
                    )
                )
                .mappings()
                .all()
            )
        busy = False
        for row in rows:
            try:
                busy = await self.step(dict(row)) or busy
            except MirrorError as e:
                log.warning("mirror of %s: %s", row["url"], e)
                await self._state(row["url"], str(e))
            except _Moved:
                busy = True
        return busy

    async def step(self, src: dict[str, Any]) -> bool:
        """Apply one page of ``src``'s feed; True when there may be more right away."""
        page = await self._page(src)
        for entry in page["entries"]:
            await self.apply(src, entry)
        if not page["more"]:
            await self._caught_up(src, page["next"])
        return bool(page["more"])

    async def _page(self, src: dict[str, Any], limit: int = PAGE) -> dict[str, Any]:
        params = {"limit": limit, **({"after": src["cursor"]} if src["cursor"] else {})}
        try:
            resp = await self.http().get(
                src["url"] + "/api/feed", params=params, headers=_auth(src["token"])
            )
        except httpx.HTTPError as e:
            raise MirrorError(f"cannot read the feed at {src['url']} ({e!r}); retrying") from e
        if resp.status_code != 200:
            raise MirrorError(
                f"the feed at {src['url']} answered {resp.status_code}: {resp.text[:300]}"
            )
        return dict(resp.json())

    async def apply(self, src: dict[str, Any], entry: dict[str, Any]) -> None:
        """Apply one entry and move the cursor past it, in one transaction."""
        event = None
        keys: list[str] | None = None
        fetched = (0, 0)
        if wanted(entry, src["collections"]):
            event = local_event(src["url"], entry, self.source)
            if entry["type"] in ("series.published", "series.republished"):
                try:
                    fetched = await self._fetch(src, entry["data"]["instances"], entry["subject"])
                except Gone:
                    # read from the beginning, the feed holds publications whose objects
                    # a later entry (withdrawal, new version) has taken away: skip those
                    if not await self._superseded(src, entry):
                        raise
                    event = None
                else:
                    keys = [i["key"] for i in entry["data"]["instances"]]
                    await self._remove(entry["subject"], keep=set(keys))
            elif entry["type"] == "series.withdrawn":
                await self._remove(entry["subject"])
        async with self.messaging.transaction() as uow:
            await self._advance(uow.session, src, entry["cursor"], 1, *fetched)
            if event is not None:
                uow.emit(event)
            if keys is not None:
                row = {"series_instance_uid": entry["subject"], "keys": keys}
                await upsert(uow.session, mirror_series, [row], key=("series_instance_uid",))
            elif event is not None and entry["type"] == "series.withdrawn":
                await uow.session.execute(
                    delete(mirror_series).where(
                        mirror_series.c.series_instance_uid == entry["subject"]
                    )
                )
        src["cursor"] = entry["cursor"]

    async def _advance(
        self, s: AsyncSession, src: dict[str, Any], cursor: str, entries: int, n: int, size: int
    ) -> None:
        t = mirror_sources.c
        result = await s.execute(
            update(mirror_sources)
            .where(t.url == src["url"], t.cursor == src["cursor"])
            .values(
                cursor=cursor,
                entries=t.entries + entries,
                instances=t.instances + n,
                bytes=t.bytes + size,
                state="following",
                updated_at=datetime.now(UTC),
            )
        )
        if getattr(result, "rowcount", 1) != 1:
            raise _Moved()

    async def _caught_up(self, src: dict[str, Any], cursor: str) -> None:
        """Nothing more for now: keep the page's cursor (past entries hidden from this
        mirror) and say so."""
        async with self.db.session() as s, s.begin():
            t = mirror_sources.c
            await s.execute(
                update(mirror_sources)
                .where(t.url == src["url"], t.cursor == src["cursor"])
                .values(
                    cursor=cursor,
                    caught_up=True,
                    state="caught up" if src["follow"] else "done",
                    updated_at=datetime.now(UTC),
                )
            )
        src["cursor"] = cursor

    async def _state(self, url: str, state: str) -> None:
        async with self.db.session() as s, s.begin():
            await s.execute(
                update(mirror_sources)
                .where(mirror_sources.c.url == url)
                .values(state=state[:1000], updated_at=datetime.now(UTC))
            )

    async def _fetch(
        self, src: dict[str, Any], instances: Sequence[dict[str, Any]], uid: str
    ) -> tuple[int, int]:
        """Fetch the objects this site lacks, each checked; returns (count, bytes) fetched."""
        gate = asyncio.Semaphore(self.parallel)

        async def one(i: dict[str, Any]) -> int:
            async with gate:
                try:
                    held = await self.store.stat("public", i["key"])
                    if held.sha256 == i["sha256"]:
                        return 0
                except ObjectNotFound:
                    pass
                params = {"SeriesInstanceUID": uid, "SOPInstanceUID": i["sop_instance_uid"]}
                try:
                    resp = await self.http().get(
                        src["url"] + SINGLE_IMAGE, params=params, headers=_auth(src["token"])
                    )
                except httpx.HTTPError as e:
                    raise MirrorError(f"cannot fetch {i['key']} ({e!r}); retrying") from e
                if resp.status_code in (400, 403, 404):
                    raise Gone(
                        f"{src['url']} does not serve {i['key']} ({resp.text[:300]}); "
                        "retrying (a token that may read the collection may be needed)"
                    )
                if resp.status_code != 200:
                    raise MirrorError(
                        f"{src['url']} answered {resp.status_code} for {i['key']} "
                        f"({resp.text[:300]}); retrying"
                    )
                data = resp.content
                digest = hashlib.sha256(data).hexdigest()
                if len(data) != i["size"] or digest != i["sha256"]:
                    raise MirrorError(
                        f"{i['key']} from {src['url']} is {len(data)} bytes with SHA-256 "
                        f"{digest}, but the feed says {i['size']} bytes and {i['sha256']}; "
                        "not applied, retrying"
                    )
                await self.store.put("public", i["key"], data)
                return len(data)

        sizes = await asyncio.gather(*(one(i) for i in instances))
        return sum(1 for n in sizes if n), sum(sizes)

    async def _superseded(self, src: dict[str, Any], entry: dict[str, Any]) -> bool:
        """Whether a later entry of the feed replaces or withdraws ``entry``'s series."""
        after = entry["cursor"]
        for _ in range(10_000):  # bounded: ten million entries ahead
            page = await self._page({**src, "cursor": after}, limit=1000)
            if any(
                e["subject"] == entry["subject"] and e["type"].startswith("series.")
                for e in page["entries"]
            ):
                return True
            if not page["more"]:
                return False
            after = page["next"]
        return False

    async def _remove(self, uid: str, keep: set[str] | None = None) -> None:
        """Remove the objects this site holds for series ``uid`` (but those in ``keep``)."""
        async with self.db.session() as s:
            held = await s.scalar(
                select(mirror_series.c["keys"]).where(mirror_series.c.series_instance_uid == uid)
            )
        for key in held or ():
            if keep is None or key not in keep:
                with contextlib.suppress(ObjectNotFound):
                    await self.store.delete("public", key)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
