"""Streams published objects to a client, verified on the way.

A series zip is built by zipstream-ng (STORED entries, so the bytes are the DICOM
files as published) from generators that read each object in chunks from the public
zone, hash it (SHA-256 against the record; MD5 for md5hashes.csv when asked) and yield
it. Only one chunk per stream is in memory, whatever the series size. Reading and
hashing are blocking and CPU-bound, so the generator is driven from a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from zipstream import ZIP_STORED, ZipStream

from services.common.store import CHUNK, ObjectStore
from services.download.domain import MD5_ENTRY, Image, md5_csv
from services.download.ziplayout import Layout

log = logging.getLogger("imarc.download")
MD5_HEX = 32
SMALL = 64 * 1024  # pieces below this are joined before they are sent


class IntegrityError(Exception):
    """A public object differs from what was published; the stream is aborted."""


@dataclass
class Progress:
    """DICOM bytes sent so far and the MD5 of each entry finished."""

    dicom_bytes: int = 0
    md5s: list[tuple[str, str]] = field(default_factory=list)


def _close(handle: Any) -> None:
    handle.close()
    release = getattr(handle, "release_conn", None)  # an S3 (urllib3) response
    if release is not None:
        release()


def verified_chunks(
    store: ObjectStore,
    image: Image,
    progress: Progress,
    *,
    md5_name: str | None = None,
    chunk: int = CHUNK,
) -> Iterator[bytes]:
    """Yield a public object in chunks; raise IntegrityError at its end if its size or
    SHA-256 differ from the published record (before a zip writes the entry's CRC)."""
    sha = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False) if md5_name is not None else None
    size = 0
    handle = store.open_sync("public", image.key)
    try:
        while block := handle.read(chunk):
            sha.update(block)
            if md5 is not None:
                md5.update(block)
            size += len(block)
            progress.dicom_bytes += len(block)
            yield block
    finally:
        _close(handle)
    if size != image.size or sha.hexdigest() != image.sha256:
        log.error(
            "public/%s does not match its published record (%d bytes, sha256 %s; expected "
            "%d bytes, sha256 %s); aborting the download",
            image.key,
            size,
            sha.hexdigest(),
            image.size,
            image.sha256,
        )
        raise IntegrityError(f"public/{image.key} does not match its published record")
    if md5 is not None and md5_name is not None:
        progress.md5s.append((md5_name, md5.hexdigest()))


def object_span(
    store: ObjectStore,
    image: Image,
    offset: int,
    length: int,
    progress: Progress,
    *,
    chunk: int = CHUNK,
) -> Iterator[bytes]:
    """``length`` bytes of a public object from ``offset`` on. A part of an object
    cannot be checked against its SHA-256: the client checks the file it assembles."""
    handle = store.open_sync("public", image.key, offset)
    try:
        left = length
        while left > 0:
            block = handle.read(min(chunk, left))
            if not block:
                log.error("public/%s is shorter than its published record", image.key)
                raise IntegrityError(f"public/{image.key} does not match its published record")
            left -= len(block)
            progress.dicom_bytes += len(block)
            yield block
    finally:
        _close(handle)


def zip_bytes(
    store: ObjectStore, layout: Layout[Image], progress: Progress, start: int = 0, end: int = -1
) -> Iterator[bytes]:
    """Bytes ``start`` to ``end`` (exclusive; -1 for the end) of a laid-out zip. Objects
    sent whole are verified as in :func:`verified_chunks`."""
    for piece, lo, n in layout.slices(start, layout.size if end < 0 else end):
        if piece.data is not None:
            yield piece.data[lo : lo + n]
        elif piece.source is None:
            raise ValueError("a zip piece has neither data nor a source")
        elif lo == 0 and n == piece.length:
            yield from verified_chunks(store, piece.source, progress)
        else:
            yield from object_span(store, piece.source, lo, n, progress)


def series_zip(
    store: ObjectStore,
    images: Sequence[Image],
    names: Sequence[str],
    progress: Progress,
    *,
    notices: Sequence[tuple[str, bytes]],
    include_md5: bool,
) -> ZipStream:
    """The NBIA getImage zip: the notices (LICENSE, CITATION), the images, then
    md5hashes.csv.

    Entries are generators, consumed in order as the zip is streamed; md5hashes.csv is
    rendered only when reached, after every image has been hashed. Every entry's size
    is known beforehand, so ``len()`` of the result is the zip's exact length.
    """
    zs = ZipStream(compress_type=ZIP_STORED, sized=True)
    for name, data in notices:
        zs.add(data, name)
    for image, name in zip(images, names, strict=True):
        zs.add(
            verified_chunks(store, image, progress, md5_name=name if include_md5 else None),
            name,
            size=image.size,
        )
    if include_md5:

        def md5_entry() -> Iterator[bytes]:
            yield md5_csv(progress.md5s).encode()

        # known in advance: MD5 hex is fixed-width
        size = len(md5_csv((n, "0" * MD5_HEX) for n in names).encode())
        zs.add(md5_entry(), MD5_ENTRY, size=size)
    return zs


async def in_thread(source: Iterator[bytes], batch: int = CHUNK) -> AsyncGenerator[bytes, None]:
    """Drive a blocking byte iterator from a worker thread, about ``batch`` bytes per
    hand-off. Runs of small pieces (zip headers) are joined; large ones pass through
    uncopied.

    The next batch is read and hashed while the current one is being sent (hashlib and
    zlib release the GIL), so disk, hashing and network overlap; at most two batches are
    in memory.
    """

    def pull() -> list[bytes]:
        out: list[bytes] = []
        small: list[bytes] = []
        n = 0
        for piece in source:
            n += len(piece)
            if len(piece) < SMALL:
                small.append(piece)
            else:
                if small:
                    out.append(b"".join(small))
                    small = []
                out.append(piece)
            if n >= batch:
                break
        if small:
            out.append(b"".join(small))
        return out

    def close_source(_: object = None) -> None:
        close = getattr(source, "close", None)
        if close is not None:
            close()  # runs the generators' finally blocks: open objects are closed

    loop = asyncio.get_running_loop()
    ahead = loop.run_in_executor(None, pull)
    try:
        # shielded: a cancelled request must not mark a read still running in its thread
        # as done, or the source would be closed while that thread is in it
        while pieces := await asyncio.shield(ahead):
            ahead = loop.run_in_executor(None, pull)
            for piece in pieces:
                yield piece
    finally:
        if ahead.done():
            close_source()
        else:  # a read still running in its thread: close once it returns
            ahead.add_done_callback(close_source)


def hold_last(source: Iterator[bytes]) -> Iterator[bytes]:
    """Pass chunks through one behind, so the last is released only once ``source`` has
    finished (and verified): a mismatch then cuts the body short of its Content-Length
    and the client sees an incomplete download instead of a complete-looking bad one."""
    previous: bytes | None = None
    try:
        for block in source:
            if previous is not None:
                yield previous
            previous = block
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    if previous is not None:
        yield previous
