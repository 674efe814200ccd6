"""One contract for both object stores (filesystem for embedded mode, S3 on loopback)."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import pytest

from services.common.store import FilesystemStore, ObjectNotFound, ObjectStore, S3Store


@pytest.fixture(params=["filesystem", pytest.param("s3", marks=pytest.mark.s3)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    s: ObjectStore
    if request.param == "filesystem":
        s = FilesystemStore(tmp_path / "objects")
    else:
        s = S3Store.from_url(request.getfixturevalue("s3_url"))
    await s.ensure_zones()
    return s


async def test_put_records_size_sha256_and_crc32(store: ObjectStore) -> None:
    data = b"DICM" * 1000
    obj = await store.put("quarantine", "C/abc.dcm", data)
    assert obj.size == len(data)
    assert obj.sha256 == hashlib.sha256(data).hexdigest()
    assert obj.crc32 == zlib.crc32(data)
    st = await store.stat("quarantine", "C/abc.dcm")
    assert (st.size, st.sha256, st.crc32) == (obj.size, obj.sha256, obj.crc32)
    assert await store.get("quarantine", "C/abc.dcm") == data


async def test_a_reader_can_start_at_an_offset(store: ObjectStore) -> None:
    data = bytes(range(256)) * 64
    await store.put("public", "C/o.dcm", data)
    for offset in (0, 1, 5000, len(data)):
        handle = store.open_sync("public", "C/o.dcm", offset)
        try:
            assert handle.read() == data[offset:]
        finally:
            handle.close()


async def test_an_object_recorded_before_crc32_has_none(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "objects")
    await store.ensure_zones()
    obj = await store.put("curation", "C/old.dcm", b"old bytes")
    meta = tmp_path / "objects" / "curation" / "C" / "old.dcm.meta"
    meta.write_text(json.dumps({"size": obj.size, "sha256": obj.sha256}))  # as once written
    st = await store.stat("curation", "C/old.dcm")
    assert (st.size, st.sha256, st.crc32) == (obj.size, obj.sha256, None)
    copied = await store.copy("curation", "C/old.dcm", "public")
    assert (copied.sha256, copied.crc32) == (obj.sha256, None)


async def test_zones_are_separate(store: ObjectStore) -> None:
    await store.put("quarantine", "C/x.dcm", b"phi")
    with pytest.raises(ObjectNotFound):
        await store.get("public", "C/x.dcm")
    with pytest.raises(ObjectNotFound):
        await store.stat("curation", "C/x.dcm")


async def test_copy_between_zones_keeps_checksum(store: ObjectStore) -> None:
    data = bytes(range(256)) * 4096
    src = await store.put("curation", "C/1/2/3.dcm", data)
    dst = await store.copy("curation", "C/1/2/3.dcm", "public")
    assert (dst.zone, dst.key, dst.size, dst.sha256, dst.crc32) == (
        "public",
        "C/1/2/3.dcm",
        src.size,
        src.sha256,
        src.crc32,
    )
    assert (await store.stat("public", "C/1/2/3.dcm")).crc32 == zlib.crc32(data)
    chunks = [c async for c in store.iter_chunks("public", "C/1/2/3.dcm", chunk=65536)]
    assert b"".join(chunks) == data and len(chunks) > 1


async def test_put_replaces_and_delete_removes(store: ObjectStore) -> None:
    await store.put("quarantine", "C/r.dcm", b"one")
    await store.put("quarantine", "C/r.dcm", b"two!")
    assert await store.get("quarantine", "C/r.dcm") == b"two!"
    assert (await store.stat("quarantine", "C/r.dcm")).size == 4
    await store.delete("quarantine", "C/r.dcm")
    with pytest.raises(ObjectNotFound):
        await store.get("quarantine", "C/r.dcm")


async def test_keys_cannot_escape_the_zone(store: ObjectStore) -> None:
    for bad in ("../public/x", "/etc/passwd", "a//b", ""):
        with pytest.raises(ValueError):
            await store.put("quarantine", bad, b"x")


async def test_missing_object_is_a_clear_error(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        await store.get("public", "nope/none.dcm")


async def test_concurrent_copies_of_one_object_all_succeed(store: ObjectStore) -> None:
    import asyncio

    data = b"x" * 10000
    await store.put("curation", "C/s/1.dcm", data)
    results = await asyncio.gather(
        *(store.copy("curation", "C/s/1.dcm", "public") for _ in range(8))
    )
    assert {r.sha256 for r in results} == {hashlib.sha256(data).hexdigest()}
    assert await store.get("public", "C/s/1.dcm") == data
