"""Object storage with three zones (buckets): quarantine, curation, public.

``S3Store`` talks to any S3 endpoint through the ``minio`` client; ``FilesystemStore``
keeps the same contract on a local directory for embedded mode. Both record each
object's size, SHA-256 and CRC-32 when it is written, so every later reader can verify
it, and a zip of published objects can be laid out before any of them is read (a zip
entry's header carries its CRC-32). Objects written before CRC-32 was recorded have
``crc32 = None``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import tempfile
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, unquote, urlparse

Zone = Literal["quarantine", "curation", "public"]
ZONES: tuple[Zone, ...] = ("quarantine", "curation", "public")
CHUNK = 1024 * 1024


class ObjectNotFound(KeyError):
    pass


@dataclass(frozen=True)
class StoredObject:
    zone: str
    key: str
    size: int
    sha256: str
    crc32: int | None = None


class ObjectStore(Protocol):
    async def ensure_zones(self) -> None: ...
    async def put(self, zone: Zone, key: str, data: bytes) -> StoredObject: ...
    async def get(self, zone: Zone, key: str) -> bytes: ...
    def iter_chunks(self, zone: Zone, key: str, chunk: int = CHUNK) -> AsyncIterator[bytes]: ...
    async def stat(self, zone: Zone, key: str) -> StoredObject: ...
    async def copy(
        self, src: Zone, key: str, dst: Zone, dst_key: str | None = None
    ) -> StoredObject: ...
    async def delete(self, zone: Zone, key: str) -> None: ...
    async def ping(self) -> None: ...
    def open_sync(self, zone: Zone, key: str, offset: int = 0) -> Any: ...
    def get_sync(self, zone: Zone, key: str) -> bytes: ...
    def put_sync(self, zone: Zone, key: str, data: bytes) -> StoredObject: ...


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key


def _record(zone: Zone, key: str, data: bytes) -> StoredObject:
    """What is recorded of an object when it is written."""
    return StoredObject(zone, key, len(data), hashlib.sha256(data).hexdigest(), zlib.crc32(data))


def _write_meta(path: Path, obj: StoredObject) -> None:
    """Write ``<object>.meta`` atomically: readers never see a half-written record."""
    meta = path.with_name(path.name + ".meta")
    tmp = meta.with_name(f".tmp-{uuid.uuid4().hex}-{meta.name}")
    record: dict[str, Any] = {"size": obj.size, "sha256": obj.sha256}
    if obj.crc32 is not None:
        record["crc32"] = obj.crc32
    tmp.write_text(json.dumps(record))
    os.replace(tmp, meta)


def _read_meta(zone: Zone, key: str, text: str) -> StoredObject:
    d = json.loads(text)
    crc = d.get("crc32")
    return StoredObject(
        zone, key, int(d["size"]), str(d["sha256"]), None if crc is None else int(crc)
    )


class FilesystemStore:
    """Objects as files under ``root/<zone>/<key>``; ``<key>.meta`` holds size, SHA-256
    and CRC-32."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync

    def _path(self, zone: Zone, key: str) -> Path:
        if zone not in ZONES:
            raise ValueError(f"unknown zone {zone!r}")
        return self.root / zone / _check_key(key)

    async def ensure_zones(self) -> None:
        for z in ZONES:
            (self.root / z).mkdir(parents=True, exist_ok=True)

    async def ping(self) -> None:
        if not self.root.is_dir():
            raise ConnectionError(f"object store directory {self.root} is missing")

    def _write(self, zone: Zone, key: str, data: bytes) -> StoredObject:
        path = self._path(zone, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        obj = _record(zone, key, data)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _write_meta(path, obj)
        return obj

    def put_sync(self, zone: Zone, key: str, data: bytes) -> StoredObject:
        """Blocking put, for worker processes and threads."""
        return self._write(zone, key, data)

    def get_sync(self, zone: Zone, key: str) -> bytes:
        """Blocking get, for worker processes and threads."""
        try:
            return self._path(zone, key).read_bytes()
        except FileNotFoundError as e:
            raise ObjectNotFound(f"{zone}/{key}") from e

    async def put(self, zone: Zone, key: str, data: bytes) -> StoredObject:
        return await asyncio.to_thread(self._write, zone, key, data)

    async def get(self, zone: Zone, key: str) -> bytes:
        return await asyncio.to_thread(self.get_sync, zone, key)

    def open_sync(self, zone: Zone, key: str, offset: int = 0) -> Any:
        """A blocking reader of the object's bytes from ``offset`` on."""
        try:
            f = open(self._path(zone, key), "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError as e:
            raise ObjectNotFound(f"{zone}/{key}") from e
        if offset:
            f.seek(offset)
        return f

    async def iter_chunks(self, zone: Zone, key: str, chunk: int = CHUNK) -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(self.open_sync, zone, key)
        try:
            while True:
                block = await asyncio.to_thread(f.read, chunk)
                if not block:
                    break
                yield block
        finally:
            f.close()

    async def stat(self, zone: Zone, key: str) -> StoredObject:
        meta = self._path(zone, key)
        meta = meta.with_name(meta.name + ".meta")
        try:
            text = await asyncio.to_thread(meta.read_text)
        except FileNotFoundError as e:
            raise ObjectNotFound(f"{zone}/{key}") from e
        return _read_meta(zone, key, text)

    def _copy(self, src: Zone, key: str, dst: Zone, dst_key: str) -> StoredObject:
        sp, dp = self._path(src, key), self._path(dst, dst_key)
        if not sp.exists():
            raise ObjectNotFound(f"{src}/{key}")
        dp.parent.mkdir(parents=True, exist_ok=True)
        tmp = dp.with_name(f".tmp-{uuid.uuid4().hex}-{dp.name}")
        try:
            os.link(sp, tmp)  # objects are immutable once written: a hard link is a copy
        except OSError:
            shutil.copyfile(sp, tmp)
        os.replace(tmp, dp)
        obj = _read_meta(dst, dst_key, sp.with_name(sp.name + ".meta").read_text())
        _write_meta(dp, obj)
        return obj

    async def copy(
        self, src: Zone, key: str, dst: Zone, dst_key: str | None = None
    ) -> StoredObject:
        return await asyncio.to_thread(self._copy, src, key, dst, dst_key or key)

    async def delete(self, zone: Zone, key: str) -> None:
        path = self._path(zone, key)
        for p in (path, path.with_name(path.name + ".meta")):
            await asyncio.to_thread(p.unlink, True)


class S3Store:
    """An S3 endpoint through the ``minio`` client (blocking calls run in threads)."""

    SHA_META = "x-amz-meta-sha256"
    CRC_META = "x-amz-meta-crc32"

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        *,
        secure: bool,
        prefix: str = "imarc-",
        region: str | None = None,
    ) -> None:
        from minio import Minio

        self.client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region
        )
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str) -> S3Store:
        u = urlparse(url)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        if not u.hostname:
            raise ValueError(f"S3 URL {url!r} has no host")
        endpoint = u.hostname + (f":{u.port}" if u.port else "")
        return cls(
            endpoint,
            unquote(u.username or ""),
            unquote(u.password or ""),
            secure=q.get("secure", "true").lower() in ("1", "true", "yes"),
            prefix=q.get("prefix", "imarc-"),
            region=q.get("region"),
        )

    def bucket(self, zone: Zone) -> str:
        if zone not in ZONES:
            raise ValueError(f"unknown zone {zone!r}")
        return f"{self.prefix}{zone}"

    async def ensure_zones(self) -> None:
        def make() -> None:
            for z in ZONES:
                if not self.client.bucket_exists(self.bucket(z)):
                    self.client.make_bucket(self.bucket(z))

        await asyncio.to_thread(make)

    async def ping(self) -> None:
        await asyncio.to_thread(self.client.bucket_exists, self.bucket("public"))

    def _put(self, zone: Zone, key: str, data: bytes) -> StoredObject:
        obj = _record(zone, _check_key(key), data)
        self.client.put_object(
            self.bucket(zone),
            key,
            io.BytesIO(data),
            len(data),
            content_type="application/dicom",
            metadata={"sha256": obj.sha256, "crc32": str(obj.crc32)},
        )
        return obj

    def put_sync(self, zone: Zone, key: str, data: bytes) -> StoredObject:
        """Blocking put, for worker processes and threads."""
        return self._put(zone, key, data)

    def get_sync(self, zone: Zone, key: str) -> bytes:
        """Blocking get, for worker processes and threads."""
        return self._get(zone, key)

    async def put(self, zone: Zone, key: str, data: bytes) -> StoredObject:
        return await asyncio.to_thread(self._put, zone, key, data)

    def _get(self, zone: Zone, key: str) -> bytes:
        from minio.error import S3Error

        try:
            resp = self.client.get_object(self.bucket(zone), key)
        except S3Error as e:
            if e.code in ("NoSuchKey", "NoSuchBucket"):
                raise ObjectNotFound(f"{zone}/{key}") from e
            raise
        try:
            return bytes(resp.read())
        finally:
            resp.close()
            resp.release_conn()

    async def get(self, zone: Zone, key: str) -> bytes:
        return await asyncio.to_thread(self._get, zone, key)

    def open_sync(self, zone: Zone, key: str, offset: int = 0) -> Any:
        """A blocking reader (an urllib3 response) of the object's bytes from ``offset`` on."""
        from minio.error import S3Error

        try:
            return self.client.get_object(self.bucket(zone), key, offset=offset)
        except S3Error as e:
            if e.code in ("NoSuchKey", "NoSuchBucket"):
                raise ObjectNotFound(f"{zone}/{key}") from e
            if e.code == "InvalidRange" and offset:
                return io.BytesIO(b"")  # from the end of the object on: nothing to read
            raise

    async def iter_chunks(self, zone: Zone, key: str, chunk: int = CHUNK) -> AsyncIterator[bytes]:
        resp = await asyncio.to_thread(self.open_sync, zone, key)
        it: Iterator[bytes] = resp.stream(chunk)
        try:
            while True:
                block = await asyncio.to_thread(next, it, b"")
                if not block:
                    break
                yield block
        finally:
            resp.close()
            resp.release_conn()

    def _stat(self, zone: Zone, key: str) -> StoredObject:
        from minio.error import S3Error

        try:
            st = self.client.stat_object(self.bucket(zone), key)
        except S3Error as e:
            if e.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                raise ObjectNotFound(f"{zone}/{key}") from e
            raise
        meta = {k.lower(): v for k, v in (st.metadata or {}).items()}
        crc = meta.get(self.CRC_META)
        return StoredObject(
            zone,
            key,
            int(st.size or 0),
            str(meta.get(self.SHA_META, "")),
            int(crc) if crc is not None else None,
        )

    async def stat(self, zone: Zone, key: str) -> StoredObject:
        return await asyncio.to_thread(self._stat, zone, key)

    def _copy(self, src: Zone, key: str, dst: Zone, dst_key: str) -> StoredObject:
        from minio.commonconfig import CopySource

        self.client.copy_object(
            self.bucket(dst), _check_key(dst_key), CopySource(self.bucket(src), key)
        )
        return self._stat(dst, dst_key)

    async def copy(
        self, src: Zone, key: str, dst: Zone, dst_key: str | None = None
    ) -> StoredObject:
        return await asyncio.to_thread(self._copy, src, key, dst, dst_key or key)

    async def delete(self, zone: Zone, key: str) -> None:
        await asyncio.to_thread(self.client.remove_object, self.bucket(zone), key)


def open_store(url: str, *, fsync: bool = True) -> ObjectStore:
    """Build the store named by ``IMARC_STORE_URL`` (``file://`` or ``s3://``)."""
    u = urlparse(url)
    if u.scheme == "file":
        return FilesystemStore(Path(unquote(u.path)), fsync=fsync)
    if u.scheme in ("s3", "http", "https"):
        return S3Store.from_url(url)
    raise ValueError(f"IMARC_STORE_URL must start with file:// or s3://, not {url!r}")
