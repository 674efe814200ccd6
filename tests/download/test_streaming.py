"""The streaming machinery on a FilesystemStore: the zip's exact length, verification,
and that an abandoned download closes what it opened."""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.store import FilesystemStore
from services.download.domain import Image
from services.download.streaming import (
    IntegrityError,
    Progress,
    hold_last,
    in_thread,
    series_zip,
    verified_chunks,
)


async def stored(tmp_path: Path, blobs: list[bytes]) -> tuple[FilesystemStore, list[Image]]:
    store = FilesystemStore(tmp_path, fsync=False)
    await store.ensure_zones()
    images = []
    for i, data in enumerate(blobs):
        obj = await store.put("public", f"C/1/2/{i}.dcm", data)
        images.append(Image(f"1.{i}", obj.key, obj.size, obj.sha256, i + 1, 1))
    return store, images


async def test_zip_length_is_known_before_streaming(tmp_path: Path) -> None:
    blobs = [bytes([i]) * (70_000 * (i + 1)) for i in range(3)]
    store, images = await stored(tmp_path, blobs)
    progress = Progress()
    zs = series_zip(
        store,
        images,
        ["a.dcm", "b.dcm", "c.dcm"],
        progress,
        notices=[("LICENSE", b"L")],
        include_md5=True,
    )
    expected = len(zs)
    body = b"".join([b async for b in in_thread(iter(zs), batch=50_000)])
    assert len(body) == expected
    z = zipfile.ZipFile(io.BytesIO(body))
    assert [z.read(n) for n in ("a.dcm", "b.dcm", "c.dcm")] == blobs
    assert progress.dicom_bytes == sum(map(len, blobs))
    assert z.read("md5hashes.csv").decode().splitlines()[1] == (
        f"a.dcm,{hashlib.md5(blobs[0]).hexdigest()}"
    )


async def test_a_changed_object_fails_after_its_bytes_and_is_closed(tmp_path: Path) -> None:
    store, [image] = await stored(tmp_path, [b"x" * 10])
    await store.put("public", image.key, b"y" * 10)
    chunks = verified_chunks(store, image, Progress(), chunk=4)
    assert next(chunks) == b"yyyy"
    with pytest.raises(IntegrityError):
        list(chunks)
    # held back by one chunk: the last piece is never released for a bad object
    got: list[bytes] = []
    with pytest.raises(IntegrityError):
        for block in hold_last(verified_chunks(store, image, Progress(), chunk=4)):
            got.append(block)
    assert b"".join(got) == b"y" * 8


async def test_an_abandoned_stream_closes_its_source() -> None:
    closed = asyncio.Event()
    loop = asyncio.get_running_loop()

    def source() -> Iterator[bytes]:
        try:
            while True:
                yield b"z" * 1000
        finally:
            loop.call_soon_threadsafe(closed.set)

    blocks = in_thread(source(), batch=1000)
    assert await anext(blocks) == b"z" * 1000
    await blocks.aclose()
    await asyncio.wait_for(closed.wait(), 5)
