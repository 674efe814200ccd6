"""Two sites in one test: A publishes (objects in its public zone, events to its catalog
and download), B mirrors A over loopback HTTP; and what to compare between them."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydicom import Dataset
from sqlalchemy import select

from services.catalog.models import collections, instances, patients, series, studies
from services.common.bus import topic_matches
from services.common.events import (
    CollectionUpdated,
    Event,
    PublishedInstance,
    SeriesPublished,
    SeriesWithdrawn,
)
from tests.catalog import helpers as h
from tests.harness import Platform, admin_headers, make_settings, runtime_app
from tests.memory import over_http

SERVICES = ["catalog", "download"]
POLICY = "https://www.cancerimagingarchive.net/data-usage-policies-and-restrictions/"


def record(name: str = "Demo-CT", **kw: Any) -> CollectionUpdated:
    return h.collection(name, **kw).model_copy(
        update={"citation": f"Doe J. {name} (2026)", "data_usage_policy": POLICY}
    )


@asynccontextmanager
async def site(path: Path, **settings: Any) -> AsyncIterator[tuple[Platform, str]]:
    """A site of catalog and download, embedded, served on a loopback port."""
    config = make_settings(path, **settings)
    runtime, app = runtime_app(config, SERVICES)
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://imarc.test") as client,
            over_http(app) as url,
        ):
            yield Platform(runtime, client, config), url
    finally:
        await runtime.stop()


async def deliver(p: Platform, *events: Event) -> None:
    """Hand ``events`` to every consumer of the site, as its bus would."""
    for event in events:
        for spec in p.runtime.specs:
            messaging = p.runtime.contexts[spec.name].messaging
            for c in spec.consumers(p.runtime.deps[spec.name]):
                if c.handler and any(topic_matches(t, event.type) for t in c.patterns):
                    await messaging.idempotent(c.queue, c.handler)(event)


async def publish(a: Platform, datasets: list[Dataset], coll: CollectionUpdated) -> str:
    """Publish a series on A as qc does: objects in the public zone, then the event."""
    store = a.runtime.store
    first = datasets[0]
    out = []
    for ds in datasets:
        key = f"{coll.name}/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
        data = _bytes(ds)
        obj = await store.put("public", key, data)
        out.append(
            PublishedInstance(
                sop_instance_uid=ds.SOPInstanceUID, key=key, size=obj.size, sha256=obj.sha256,
                header=h.header(ds), crc32=obj.crc32,
            )
        )  # fmt: skip
    event = SeriesPublished(
        collection=coll, site="Site-A", patient_id=first.PatientID,
        study_instance_uid=first.StudyInstanceUID, series_instance_uid=first.SeriesInstanceUID,
        released_at=datetime.now(UTC), instances=out,
    ).event("/site-a/qc", subject=first.SeriesInstanceUID)  # fmt: skip
    await deliver(a, event)
    return str(first.SeriesInstanceUID)


async def withdraw(a: Platform, coll: str, uid: str, reason: str) -> None:
    """Withdraw a series on A as qc does: the event, then its public objects go."""
    async with a.runtime.contexts["catalog"].db.engine.connect() as conn:
        keys = (
            await conn.scalars(
                select(instances.c.key).where(instances.c.series_instance_uid == uid)
            )
        ).all()
    event = SeriesWithdrawn(collection=coll, series_instance_uid=uid, reason=reason)
    await deliver(a, event.event("/site-a/qc", subject=uid))
    for key in keys:
        await a.runtime.store.delete("public", key)


def _bytes(ds: Dataset) -> bytes:
    import io

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def public_objects(root: Path) -> dict[str, str]:
    """Every object of a site's public zone: key → SHA-256 of its bytes."""
    base = root / "objects" / "public"
    return {
        str(f.relative_to(base)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(base.rglob("*"))
        if f.is_file() and not f.name.endswith(".meta") and not f.name.startswith(".tmp-")
    }


async def catalog_rows(p: Platform) -> dict[str, list[dict[str, Any]]]:
    """Every row of the catalog's index (collection ids are local and left out)."""
    out: dict[str, list[dict[str, Any]]] = {}
    async with p.runtime.contexts["catalog"].db.engine.connect() as conn:
        for table in (collections, patients, studies, series, instances):
            cols = [c for c in table.c if c.name != "id"]
            rows = (await conn.execute(select(*cols))).mappings().all()
            out[table.name] = sorted((dict(r) for r in rows), key=repr)
    return out


async def mirror_status(b: Platform) -> list[dict[str, Any]]:
    r = await b.client.get("/api/catalog/mirror", headers=admin_headers())
    assert r.status_code == 200, r.text
    return list(r.json())
