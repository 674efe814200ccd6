"""A platform running intake and deid, with a recorder of every event on the bus."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydicom import dcmread

from services.common.events import (
    CollectionUpdated,
    Event,
    InstanceDeidentified,
    InstanceHeld,
    InstanceReceived,
    Licence,
    ObjectRef,
    Payload,
)
from tests.harness import Platform, admin_headers, auth_header, mint, platform

P = TypeVar("P", bound=Payload)


def manager_headers(collection: str) -> dict[str, str]:
    return auth_header(mint("mgr", coll={collection: ["manager"]}))


def curator_headers(collection: str) -> dict[str, str]:
    return auth_header(mint("cur", coll={collection: ["curator"]}))


def submitter_headers(collection: str) -> dict[str, str]:
    return auth_header(mint("sub", coll={collection: ["submitter"]}))


@dataclass
class Recorder:
    events: list[Event] = field(default_factory=list)

    async def on(self, event: Event) -> None:
        self.events.append(event)

    def of(self, model: type[P], **match: Any) -> list[P]:
        out = []
        for e in self.events:
            if e.type != model.TYPE:
                continue
            payload = e.payload(model)
            if all(getattr(payload, k) == v for k, v in match.items()):
                out.append(payload)
        return out


@dataclass
class Deid:
    p: Platform
    recorder: Recorder
    intake: bool

    @property
    def client(self) -> Any:
        return self.p.client

    async def create_collection(self, name: str, *, require_id_map: bool = False) -> None:
        if self.intake:
            r = await self.client.post(
                "/api/intake/collections",
                json={"name": name, "licence": "CC-BY-4.0", "require_id_map": require_id_map},
                headers=admin_headers(),
            )
            assert r.status_code == 201, r.text
        else:
            event = CollectionUpdated(
                name=name, licence=Licence(id="CC-BY-4.0"), require_id_map=require_id_map
            ).event("/test/intake", subject=name)
            await self.p.runtime.bus.publish([event])

        async def ready() -> bool:
            r = await self.client.get(
                f"/api/deid/collections/{name}/profile", headers=admin_headers()
            )
            return r.status_code == 200

        await self.p.wait_until(ready, what=f"deid to know collection {name}")

    async def submit(self, collection: str, raw: bytes, filename: str = "x.dcm") -> str:
        """Submit one file; returns its instance_id."""
        if not self.intake:
            return (await self.publish_received(collection, raw)).data["instance_id"]
        r = await self.client.post(
            f"/api/intake/collections/{collection}/instances",
            content=raw,
            headers={
                **admin_headers(),
                "Content-Type": "application/dicom",
                "X-Filename": filename,
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["accepted_count"] == 1, body
        return str(body["accepted"][0]["instance_id"])

    async def publish_received(
        self,
        collection: str,
        raw: bytes,
        *,
        instance_id: str | None = None,
        sha256: str | None = None,
    ) -> Event:
        """Do what intake does: quarantine the bytes and publish instance.received."""
        if instance_id is None:
            # stable per (collection, PatientID, SOPInstanceUID) as intake derives it
            ds = dcmread(io.BytesIO(raw), stop_before_pixels=True)
            name = f"{collection}|{ds.PatientID}|{ds.SOPInstanceUID}"
            instance_id = hashlib.sha256(name.encode()).hexdigest()[:32]
        key = f"{collection}/{instance_id}.dcm"
        stored = await self.p.runtime.store.put("quarantine", key, raw)
        event = InstanceReceived(
            instance_id=instance_id,
            collection=collection,
            site="test-site",
            filename="x.dcm",
            object=ObjectRef(
                zone="quarantine",
                key=key,
                size=stored.size,
                sha256=sha256 or hashlib.sha256(raw).hexdigest(),
            ),
        ).event("/test/intake", subject=instance_id)
        await self.p.runtime.bus.publish([event])
        return event

    async def wait_for(
        self, model: type[P], timeout: float = 30, *, fail_on_hold: bool = True, **match: Any
    ) -> P:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.recorder.of(model, **match)
            if found:
                return found[-1]
            if model is InstanceDeidentified and fail_on_hold:
                held = self.recorder.of(InstanceHeld, **match)
                if held:
                    raise AssertionError(f"held instead of de-identified: {held[-1].reason}")
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {model.__name__} with {match} within {timeout}s")

    async def settle(self) -> None:
        """Wait until no outbox holds an unsent event and no queue holds a message."""
        runtime = self.p.runtime

        async def quiet() -> bool:
            for ctx in runtime.contexts.values():
                if await ctx.messaging.pending():
                    return False
            return (
                await runtime.bus.depth("deid.on_instance_received") == 0
                and await runtime.bus.depth("test.recorder") == 0
            )

        await self.p.wait_until(quiet, what="the platform to settle")
        await asyncio.sleep(0.1)
        await self.p.wait_until(quiet, what="the platform to settle")


@asynccontextmanager
async def deid_platform(
    tmp_path: Path, *, with_intake: bool = True, record: bool = True, **overrides: Any
) -> AsyncIterator[Deid]:
    """deid with a recorder on the bus, and intake unless ``with_intake`` is False (then
    ``submit`` does intake's part itself: quarantine the bytes, publish instance.received)."""
    services = ["intake", "deid"] if with_intake else ["deid"]
    async with platform(tmp_path, services=services, **overrides) as p:
        recorder = Recorder()
        if record:
            await p.runtime.bus.subscribe("test.recorder", ["org.imarc.#"], recorder.on)
        yield Deid(p, recorder, with_intake)
