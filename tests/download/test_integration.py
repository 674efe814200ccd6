"""Publish and download against the real adapters: an S3 endpoint (moto server on
loopback) for the zones, and PostgreSQL for qc's and download's tables."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from tests.download.test_download_service import V4
from tests.harness import Platform, admin_headers, platform
from tests.qc.curation import Curated, collection_event, make_series, put_curated


async def publish(p: Platform, items: list[Curated], collection: str = "Demo-CT") -> None:
    """Curate and publish ``items`` through the running platform's bus and qc's API, and
    wait until download serves them."""
    await put_curated(p.runtime.store, items)
    await p.runtime.bus.publish([c.deidentified() for c in items])

    async def curated() -> bool:
        r = await p.client.get(f"/api/qc/collections/{collection}/series", headers=admin_headers())
        return any(s["instances"] == len(items) for s in r.json())

    await p.wait_until(curated, 10, "instances in curation")
    r = await p.client.post(
        f"/api/qc/collections/{collection}/publish",
        headers=admin_headers(),
        json={"series": [items[0].series]},
    )
    assert r.status_code == 200, r.text

    async def indexed() -> bool:
        r = await p.client.get(
            f"{V4}/getImage", params={"SeriesInstanceUID": items[0].series}, headers=admin_headers()
        )
        return r.status_code == 200

    await p.wait_until(indexed, 10, "series indexed by download")


async def publish_and_download(p: Platform) -> None:
    await p.runtime.bus.publish([collection_event()])
    items = make_series(5, acquisitions=1)
    await publish(p, items)
    uid = items[0].series
    for c in items:  # the public copies are the curation objects, byte for byte
        assert await p.runtime.store.get("public", c.key) == c.data
        assert (await p.runtime.store.stat("public", c.key)).sha256 == c.sha256
    r = await p.client.get(
        f"{V4}/getImage",
        params={"SeriesInstanceUID": uid, "NewFileNames": "Yes", "IncludeMD5": "Yes"},
    )
    assert r.status_code == 200
    z = zipfile.ZipFile(io.BytesIO(r.content))
    names = [f"1-{i}.dcm" for i in range(1, 6)]
    assert z.namelist() == ["LICENSE", "CITATION", *names, "md5hashes.csv"]
    assert [z.read(n) for n in names] == [c.data for c in items]
    md5 = z.read("md5hashes.csv").decode().splitlines()[1:]
    assert md5 == [
        f"{n},{hashlib.md5(c.data).hexdigest()}" for n, c in zip(names, items, strict=True)
    ]
    r = await p.client.get(
        f"{V4}/getSingleImage", params={"SeriesInstanceUID": uid, "SOPInstanceUID": items[2].sop}
    )
    assert r.content == items[2].data


@pytest.mark.s3
async def test_publish_and_get_image_on_s3(tmp_path: Path, s3_url: str) -> None:
    async with platform(tmp_path, services=["qc", "download"], store_url=s3_url) as p:
        await publish_and_download(p)


@pytest.mark.postgres
async def test_publish_and_get_image_on_postgresql(tmp_path: Path, fresh_pg_url: str) -> None:
    async with platform(tmp_path, services=["qc", "download"], database_url=fresh_pg_url) as p:
        await publish_and_download(p)
