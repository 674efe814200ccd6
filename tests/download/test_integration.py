"""Publish and download against the real adapters: an S3 endpoint (moto server on
loopback) for the zones, and PostgreSQL for qc's and download's tables."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.download.test_download_service import V4, publish
from tests.harness import Platform, platform
from tests.qc.curation import collection_event, make_series


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
    assert z.namelist() == ["LICENSE", *names, "md5hashes.csv"]
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


@pytest.fixture
async def fresh_database(postgres_url: str, unique: str) -> AsyncIterator[str]:
    """A database of its own, so the services' schemas (named qc, download) are fresh."""
    admin = dict(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    conn = await asyncpg.connect(**admin)
    try:
        await conn.execute(f'CREATE DATABASE "{unique}"')
    finally:
        await conn.close()
    yield postgres_url.rsplit("/", 1)[0] + f"/{unique}"
    conn = await asyncpg.connect(**admin)
    try:
        await conn.execute(f'DROP DATABASE "{unique}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_publish_and_get_image_on_postgresql(tmp_path: Path, fresh_database: str) -> None:
    async with platform(tmp_path, services=["qc", "download"], database_url=fresh_database) as p:
        await publish_and_download(p)
