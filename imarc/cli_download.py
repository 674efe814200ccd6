"""`imarc download`: series from a manifest, a collection or a list, into the NBIA Data
Retriever's folder layout (Collection/Patient/Study/Series), every file checked against
the server's SHA-256, resumable: a re-run skips what is complete and continues a partial
file with an HTTP range request.

A series none of whose files is there yet comes as one zip (getImage), written file by
file as it streams; the rest, and what a cut zip left, comes file by file
(getSingleImage, with a range request for a partial file).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from imarc.cli_http import api_client, describe, fail
from services.download.manifest import parse_manifest

out = Console(soft_wrap=True)
err = Console(stderr=True)
PART = ".part"
BLOCK = 1024 * 1024
#: series asked about per request for their file lists
PER_REQUEST = 1000
ATTEMPTS = 4
IMAGE = "/nbia-api/services/v4/getSingleImage"
ZIP = "/nbia-api/services/v4/getImage"


@dataclass(frozen=True)
class File:
    path: Path
    series: str
    sop: str
    size: int
    sha256: str


@dataclass
class Outcome:
    files: int = 0
    fetched: int = 0
    present: int = 0
    resumed: int = 0
    bytes: int = 0
    failed: list[tuple[File, str]] = field(default_factory=list)


def _safe(part: str) -> str:
    """A folder name from a server value (never a path of its own)."""
    cleaned = part.replace("/", "_").replace("\\", "_").strip() or "_"
    return "_" if cleaned in (".", "..") else cleaned


def sha256_of(path: Path, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
            if progress:
                progress(len(block))
    return h.hexdigest()


def plan(listing: dict[str, Any], out_dir: Path) -> tuple[list[File], dict[Path, dict[str, str]]]:
    """Where every file goes, and the notices (LICENSE, CITATION) of each collection folder."""
    files: list[File] = []
    notices: dict[Path, dict[str, str]] = {}
    for s in listing["series"]:
        coll = out_dir / _safe(s["collection"])
        folder = coll / _safe(s["patient_id"]) / _safe(s["study_instance_uid"])
        folder = folder / _safe(s["series_instance_uid"])
        notices[coll] = listing["notices"].get(s["collection"], {})
        for f in s["files"]:
            files.append(
                File(
                    folder / _safe(f["name"]),
                    s["series_instance_uid"],
                    f["sop_instance_uid"],
                    int(f["size"]),
                    f["sha256"],
                )
            )
    return files, notices


class _Retry(Exception):
    """A failure worth another try (a broken connection, a file that did not check)."""


class _NotLaidOut(Exception):
    """The series zip comes with data descriptors (objects older than CRC-32 records):
    its files are fetched one by one instead."""


_LOCAL = struct.Struct("<IHHHHHIIIHH")


class _Reader:
    """Exact reads from a stream of byte blocks."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self.blocks, self.buf = blocks, b""

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            block = next(self.blocks, b"")
            if not block:
                raise _Retry("the download was cut short")
            self.buf += block
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def pieces(self, n: int) -> Iterator[bytes]:
        """``n`` bytes, as they come (no copy of large blocks)."""
        if self.buf:
            head, self.buf = self.buf[:n], self.buf[n:]
            n -= len(head)
            yield head
        while n > 0:
            block = next(self.blocks, b"")
            if not block:
                raise _Retry("the download was cut short")
            if len(block) > n:
                block, self.buf = block[:n], block[n:]
            n -= len(block)
            yield block


class Fetcher:
    """Fetches files, each thread over its own kept-alive connection."""

    def __init__(self, url: str, headers: dict[str, str], advance: Callable[[int], None]):
        self.url, self.headers, self.advance = url, headers, advance
        self.local = threading.local()
        self.lock = threading.Lock()

    def client(self) -> httpx.Client:
        c = getattr(self.local, "client", None)
        if c is None:
            c = self.local.client = httpx.Client(
                base_url=self.url, headers=self.headers, timeout=httpx.Timeout(60, connect=10)
            )
        return c

    def fetch_series(self, files: list[File], outcome: Outcome) -> list[tuple[File, str]]:
        """A series: as one zip when none of its files is there yet (one request, read at
        the speed of the stream), else — or for what a cut zip left — file by file.
        Returns the files that failed, with why."""
        done: set[Path] = set()
        fresh = not any(
            f.path.exists() or f.path.with_name(f.path.name + PART).exists() for f in files
        )
        if fresh and files:
            with contextlib.suppress(httpx.TransportError, _Retry, _NotLaidOut):
                self._zip(files, outcome, done)
        failed = []
        for f in files:
            if f.path in done:
                continue
            try:
                self.fetch(f, outcome)
            except Exception as e:
                failed.append((f, str(e) or type(e).__name__))
        return failed

    def _zip(self, files: list[File], outcome: Outcome, done: set[Path]) -> None:
        """Fetch the series zip and write each image as it streams by (STORED entries
        whose local headers carry their sizes: the server's laid-out zip)."""
        by_name = {f.path.name: f for f in files}
        files[0].path.parent.mkdir(parents=True, exist_ok=True)
        params = {"SeriesInstanceUID": files[0].series, "NewFileNames": "Yes"}
        with self.client().stream("GET", ZIP, params=params) as r:
            if r.status_code != 200:
                r.read()
                raise _Retry(describe(r))
            if r.headers.get("accept-ranges") != "bytes":
                raise _NotLaidOut()
            reader = _Reader(r.iter_raw(BLOCK))
            while True:
                (sig, _, flags, method, _, _, _, size, _, nlen, elen) = _LOCAL.unpack(
                    reader.read(_LOCAL.size)
                )
                if sig != 0x04034B50:
                    return  # the central directory: every entry has been read
                name = reader.read(nlen).decode()
                extra = reader.read(elen)
                if flags & 0x08 or method != 0:
                    raise _NotLaidOut()
                if size == 0xFFFFFFFF:  # ZIP64: the sizes are in the extra field
                    size = struct.unpack_from("<Q", extra, extra.index(b"\x01\x00") + 12)[0]
                f = by_name.get(name)
                if f is None:  # LICENSE, CITATION: already written from the file list
                    for _ in reader.pieces(size):
                        pass
                    continue
                self._receive(f, reader.pieces(size), outcome)
                done.add(f.path)

    def _receive(self, f: File, pieces: Iterator[bytes], outcome: Outcome) -> None:
        part = f.path.with_name(f.path.name + PART)
        h = hashlib.sha256()
        size = self._write(part, "wb", pieces, h, outcome)
        self._settle(f, part, size, h)
        with self.lock:
            outcome.fetched += 1

    def _write(
        self, part: Path, mode: str, pieces: Iterator[bytes], h: Any, outcome: Outcome
    ) -> int:
        """Write (or append) ``pieces`` to ``part``, hashing and counting them."""
        size = 0
        with open(part, mode) as sink:
            for block in pieces:
                sink.write(block)
                h.update(block)
                size += len(block)
                self.advance(len(block))
                with self.lock:
                    outcome.bytes += len(block)
        return size

    def _settle(self, f: File, part: Path, size: int, h: Any) -> None:
        """Move a checked ``part`` in place; a part that does not check is dropped."""
        if size != f.size or h.hexdigest() != f.sha256:
            part.unlink(missing_ok=True)
            self.advance(-size)
            raise _Retry(f"{f.path.name} did not match the server's checksum")
        os.replace(part, f.path)

    def fetch(self, f: File, outcome: Outcome) -> None:
        """Make ``f.path`` complete and checked, or raise saying what went wrong."""
        if f.path.exists():
            if f.path.stat().st_size == f.size and sha256_of(f.path) == f.sha256:
                self.advance(f.size)
                with self.lock:
                    outcome.present += 1
                return
            f.path.unlink()  # damaged or changed on the server: fetched again
        f.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(ATTEMPTS):
            try:
                continued = self._once(f, outcome)
            except (httpx.TransportError, _Retry) as e:
                if attempt == ATTEMPTS - 1:
                    raise RuntimeError(str(e) or type(e).__name__) from e
                time.sleep(min(0.5 * 2**attempt, 4))
                continue
            with self.lock:
                outcome.fetched += 1
                outcome.resumed += int(continued)
            return

    def _once(self, f: File, outcome: Outcome) -> bool:
        """One try: continue ``<file>.part`` from where it ends (a range request naming
        the file's checksum, so a changed file is sent whole), check it, then move it in
        place. Returns whether a partial file was continued."""
        part = f.path.with_name(f.path.name + PART)
        have = part.stat().st_size if part.exists() else 0
        if have > f.size:
            part.unlink()
            have = 0
        h = hashlib.sha256()
        if have:
            with open(part, "rb") as existing:
                while block := existing.read(BLOCK):
                    h.update(block)
        self.advance(have)
        continued, size = have > 0, have
        if have < f.size:
            headers = {"Range": f"bytes={have}-", "If-Range": f'"{f.sha256}"'} if have else {}
            params = {"SeriesInstanceUID": f.series, "SOPInstanceUID": f.sop}
            with self.client().stream("GET", IMAGE, params=params, headers=headers) as r:
                if r.status_code not in (200, 206):
                    r.read()
                    raise (_Retry if r.status_code >= 500 else RuntimeError)(describe(r))
                if r.status_code == 200 and have:  # sent whole: the part was of another file
                    self.advance(-have)
                    size, continued, h = 0, False, hashlib.sha256()
                mode = "ab" if size else "wb"
                size += self._write(part, mode, r.iter_bytes(BLOCK), h, outcome)
        self._settle(f, part, size, h)
        return continued


def _chunks(items: Sequence[str], n: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def download(
    ctx: typer.Context,
    manifest: Annotated[
        Path | None, typer.Argument(help="A .tcia manifest (or a file of SeriesInstanceUIDs).")
    ] = None,
    collection: Annotated[
        str | None, typer.Option("--collection", help="Every series of a collection.")
    ] = None,
    series: Annotated[
        list[str] | None, typer.Option("--series", help="A SeriesInstanceUID (repeatable).")
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the folders go.")] = Path("."),
    parallel: Annotated[
        int, typer.Option("--parallel", min=1, max=32, help="Files fetched at once.")
    ] = 4,
) -> None:
    """Download series into Collection/Patient/Study/Series folders, checked and resumable.

    Exits 0 when every series asked for arrived complete, 1 otherwise (the summary says
    which series are not available to you and which files failed)."""
    if sum(x is not None and x != [] for x in (manifest, collection, series)) != 1:
        fail("give one of: a manifest file, --collection NAME, or --series UID (repeatable)")
    api = api_client(ctx)
    if manifest is not None:
        try:
            uids = parse_manifest(manifest.read_text())
        except OSError as e:
            fail(f"cannot read the manifest {manifest}: {e.strerror or e}")
        except ValueError as e:
            fail(f"{manifest} is not a manifest: {e}")
    elif collection is not None:
        uids = parse_manifest(api.get(f"/api/download/collections/{collection}/manifest").text)
    else:
        uids = list(dict.fromkeys(series or []))
    if not uids:
        fail("the manifest lists no series")

    listing: dict[str, Any] = {"series": [], "unavailable": [], "notices": {}}
    for chunk in _chunks(uids, PER_REQUEST):
        body = {"series": list(chunk)}
        part = api.request("POST", "/api/download/files", json=body, attempts=3).json()
        listing["series"] += part["series"]
        listing["unavailable"] += part["unavailable"]
        listing["notices"].update(part["notices"])
    files, notices = plan(listing, out_dir)
    for folder, texts in notices.items():
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (folder / name).write_text(text)

    outcome = Outcome(files=len(files))
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]downloading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task("download", total=sum(f.size for f in files))
        fetcher = Fetcher(api.url, dict(api.headers), lambda n: bar.update(task, advance=n))
        by_series: dict[str, list[File]] = {}
        for f in files:
            by_series.setdefault(f.series, []).append(f)
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            for failed in pool.map(
                lambda fs: fetcher.fetch_series(fs, outcome), by_series.values()
            ):
                outcome.failed += failed
    elapsed = time.perf_counter() - started
    _summary(listing, outcome, elapsed, out_dir)
    complete = not outcome.failed and not listing["unavailable"]
    raise typer.Exit(0 if complete else 1)


def _summary(listing: dict[str, Any], o: Outcome, seconds: float, out_dir: Path) -> None:
    got = len(listing["series"])
    failed_series = {f.series for f, _ in o.failed}
    out.print(
        f"{got - len(failed_series)} of {got + len(listing['unavailable'])} series complete in "
        f"{out_dir}: {o.fetched} files fetched ({o.resumed} continued), {o.present} already "
        f"there, {o.bytes / 1e6:.1f} MB in {seconds:.1f} s "
        f"({o.bytes / 1e6 / max(seconds, 1e-6):.1f} MB/s)",
        highlight=False,
    )
    if listing["unavailable"]:
        out.print(
            f"{len(listing['unavailable'])} series are not available to you (restricted to "
            "other users, withdrawn, or unknown); log in with an account that may have them:",
            highlight=False,
        )
        for uid in listing["unavailable"]:
            out.print(f"  {uid}", highlight=False)
    if o.failed:
        out.print(f"{len(o.failed)} files failed; run the same command again to continue:")
        for f, why in o.failed:
            out.print(f"  {f.path}: {why}", highlight=False)
