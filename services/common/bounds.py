"""Bounds on what a client can make a service read (OWASP API4, unrestricted resource
consumption): sizes counted while the bytes stream in, zip members and deflated datasets
inflated in chunks under a size and a ratio cap.

Every path that takes DICOM from outside (HTTP submissions, STOW-RS bodies, C-STORE
associations) reads through these, so one set of settings bounds them all:

- ``capped(request, limit)`` and ``spool(request, stack)``: a request body refused once it
  passes ``limit`` bytes, Content-Length or not;
- ``parse_form(request, limits)``: multipart parts, each refused once it passes the file limit;
- ``parse_related(request, boundary, limits, max_parts, stack)``: a multipart/related body
  (STOW-RS) parsed as it streams, each part refused once it passes the file limit, parts
  beyond a memory budget spooled to disk;
- ``check_zip(archive, limits)`` and ``read_zip_member(archive, info, limits)``: a zip whose
  declared sizes or ratios pass the caps is refused before anything is unpacked; a member is
  inflated in chunks and never past the size it declares;
- ``inflate(data, limits, what)``: a raw deflate stream (PS3.5 A.5) inflated in chunks, never
  past the file limit or the ratio cap.

A refusal raises ``LimitExceeded``: its message names the limit and its setting.
"""

from __future__ import annotations

import tempfile
import zipfile
import zlib
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, cast

from python_multipart.multipart import MultipartParser
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartParser
from starlette.requests import Request
from starlette.types import Message

if TYPE_CHECKING:
    from services.common.settings import Settings

#: Request bodies up to this size stay in memory; larger ones go to a temporary file.
SPOOL_IN_MEMORY = 8 * 1024 * 1024
#: A multipart/related part keeps up to this many bytes in memory before going to disk, and
#: the parts of one body together up to RELATED_IN_MEMORY; later parts go straight to disk.
PART_IN_MEMORY = 1024 * 1024
RELATED_IN_MEMORY = 32 * 1024 * 1024
#: Inflating stops and checks the caps after at most this many bytes of output.
CHUNK = 1024 * 1024
#: Below this many inflated bytes the ratio cap does not apply (a blank image compresses
#: a thousandfold and is harmless at this size).
RATIO_FLOOR = 16 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The caps on one submission, from the ``IMARC_INTAKE_MAX_*`` settings."""

    request_bytes: int = 8 * 1024**3
    file_bytes: int = 1024**3
    inflate_ratio: int = 100
    elements: int = 1_000_000
    depth: int = 32

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            request_bytes=settings.intake_max_upload_bytes,
            file_bytes=settings.intake_max_file_bytes,
            inflate_ratio=settings.intake_max_inflate_ratio,
            elements=settings.intake_max_elements,
            depth=settings.intake_max_sequence_depth,
        )


class LimitExceeded(Exception):
    """Input past one of the Limits; the message names the limit and its setting.
    ``code`` is a fixed label for metrics and hold records."""

    code = "limit"

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


def request_too_large(limit: int) -> LimitExceeded:
    return LimitExceeded(
        f"this submission is larger than the {limit} bytes this site accepts at once "
        "(IMARC_INTAKE_MAX_UPLOAD_BYTES); send it in smaller parts",
        "IMARC_INTAKE_MAX_UPLOAD_BYTES",
    )


def file_too_large(limit: int, what: str = "a file") -> LimitExceeded:
    return LimitExceeded(
        f"{what} is larger than the {limit} bytes this site accepts for one file "
        "(IMARC_INTAKE_MAX_FILE_BYTES); send smaller files or ask the site to raise the limit",
        "IMARC_INTAKE_MAX_FILE_BYTES",
    )


def ratio_too_high(ratio: int, what: str) -> LimitExceeded:
    return LimitExceeded(
        f"{what} inflates to more than {ratio} times its compressed size "
        "(IMARC_INTAKE_MAX_INFLATE_RATIO), the mark of a compression bomb; "
        "send the files uncompressed or compressed less",
        "IMARC_INTAKE_MAX_INFLATE_RATIO",
    )


# -- request bodies ----------------------------------------------------------------------------


def capped(request: Request, limit: int, refusal: LimitExceeded | None = None) -> Request:
    """The same request, raising ``refusal`` (by default: too large a request) once its
    body passes ``limit`` bytes; a refused Content-Length is refused before reading.
    A body without Content-Length (chunked) cannot fill the disk either."""
    refusal = refusal or request_too_large(limit)
    declared = request.headers.get("content-length") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise refusal
    seen = 0

    async def receive() -> Message:
        nonlocal seen
        message = await request.receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise refusal
        return message

    return Request(request.scope, receive)


async def spool(request: Request, stack: AsyncExitStack) -> UploadFile:
    """The request body in a temporary file (in memory up to SPOOL_IN_MEMORY bytes)."""
    # Starlette's UploadFile writes in a thread once the spool has rolled over to disk.
    file = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY))  # noqa: SIM115
    body = UploadFile(cast(BinaryIO, file), size=0)
    async for chunk in request.stream():
        if chunk:
            await body.write(chunk)
    return body


class _BoundedParts(MultiPartParser):
    """Starlette's multipart parser, refusing a file part once it passes ``file_bytes``
    (Starlette bounds only the parts that are not files)."""

    def __init__(self, request: Request, file_bytes: int, max_files: int) -> None:
        super().__init__(request.headers, request.stream(), max_files=max_files, max_fields=1000)
        self.file_bytes = file_bytes
        self._sizes: dict[int, int] = {}

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current_part.file is not None:
            key = id(self._current_part)
            self._sizes[key] = self._sizes.get(key, 0) + end - start
            if self._sizes[key] > self.file_bytes:
                name = self._current_part.file.filename or "a part"
                raise file_too_large(self.file_bytes, f"the part {name[:200]!r}")
        super().on_part_data(data, start, end)


async def parse_form(request: Request, limits: Limits, max_files: int) -> FormData:
    """A multipart/form-data body, each file part counted as it streams."""
    parser = _BoundedParts(request, limits.file_bytes, max_files)
    try:
        return await parser.parse()
    except LimitExceeded:
        for f in parser._files_to_close_on_error:
            f.close()
        raise


class MalformedBody(ValueError):
    """A multipart body that does not parse; the message says what is wrong."""


@dataclass
class Part:
    """One part of a multipart/related body: its headers (names in lower case) and its
    bytes, in a temporary file."""

    headers: dict[str, str]
    file: BinaryIO
    size: int = 0
    ended: bool = field(default=False, repr=False)


def too_many_parts(limit: int) -> LimitExceeded:
    return LimitExceeded(
        f"the body holds more than {limit} parts; send the files in several requests",
        "IMARC_INTAKE_MAX_UPLOAD_BYTES",
    )


async def parse_related(
    request: Request, boundary: str, limits: Limits, max_parts: int, stack: AsyncExitStack
) -> list[Part]:
    """The parts of a multipart/related body (PS3.18 8.6.1.2), parsed as the body streams
    in: the body is refused past the request limit, a part past the file limit, and past
    ``max_parts`` parts; memory stays within RELATED_IN_MEMORY whatever the body's size.
    Raises LimitExceeded, or MalformedBody for a body that is not multipart/related."""
    parts: list[Part] = []
    name, value = bytearray(), bytearray()
    headers: dict[str, str] = {}
    in_memory = 0

    def on_part_begin() -> None:
        if len(parts) >= max_parts:
            raise too_many_parts(max_parts)
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        value.extend(data[start:end])

    def on_header_end() -> None:
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
        name.clear()
        value.clear()

    def on_headers_finished() -> None:
        file: BinaryIO
        if in_memory < RELATED_IN_MEMORY:
            file = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=PART_IN_MEMORY))  # noqa: SIM115
        else:
            file = tempfile.TemporaryFile()  # noqa: SIM115
        stack.callback(file.close)
        parts.append(Part(dict(headers), file))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part = parts[-1]
        part.size += end - start
        if part.size > limits.file_bytes:
            raise file_too_large(limits.file_bytes, f"part {len(parts)}")
        part.file.write(data[start:end])

    def on_part_end() -> None:
        nonlocal in_memory
        part = parts[-1]
        part.ended = True
        in_memory += min(part.size, PART_IN_MEMORY)
        part.file.seek(0)

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except LimitExceeded:
        raise
    except Exception as e:  # python-multipart's MultipartParseError and friends
        raise MalformedBody(f"the multipart body does not parse ({e})") from None
    if not parts or not all(p.ended for p in parts):
        raise MalformedBody(
            "the multipart body holds no complete part; each part starts with --BOUNDARY "
            "and the body ends with --BOUNDARY--"
        )
    return parts


def read_file(f: BinaryIO, limits: Limits, what: str = "the file") -> bytes:
    """All of ``f`` from its start, refused past the file limit."""
    size = f.seek(0, 2)  # read(limit + 1) would allocate the limit up front
    if size > limits.file_bytes:
        raise file_too_large(limits.file_bytes, what)
    f.seek(0)
    return f.read(size)


# -- compressed input --------------------------------------------------------------------------


def _ratio_passed(out: int, compressed: int, ratio: int) -> bool:
    return out > RATIO_FLOOR and out > ratio * max(compressed, 1)


def check_zip(entries: list[zipfile.ZipInfo], limits: Limits) -> None:
    """Refuse a zip, before unpacking anything, whose central directory declares a member
    past the file limit or the ratio cap, or members past the request limit in all."""
    total = sum(i.file_size for i in entries)
    if total > limits.request_bytes:
        raise LimitExceeded(
            f"this zip unpacks to {total} bytes, more than the {limits.request_bytes} bytes "
            "this site accepts at once (IMARC_INTAKE_MAX_UPLOAD_BYTES); "
            "send it as several smaller zips",
            "IMARC_INTAKE_MAX_UPLOAD_BYTES",
        )
    for i in entries:
        what = f"the zip entry {i.filename[:200]!r}"
        if i.file_size > limits.file_bytes:
            raise file_too_large(limits.file_bytes, what)
        if _ratio_passed(i.file_size, i.compress_size, limits.inflate_ratio):
            raise ratio_too_high(limits.inflate_ratio, what)


def read_zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits) -> bytes:
    """One member's bytes, inflated a chunk at a time: never more than its header declares
    (``check_zip`` has bounded that), nor past the file limit or the ratio cap.
    Damaged or lying members raise ValueError with the reason."""
    if info.flag_bits & 0x1:
        raise ValueError("the zip entry is encrypted; zip the files without a password")
    cap = min(info.file_size, limits.file_bytes)
    out = bytearray()
    try:
        with archive.open(info) as f:
            while chunk := f.read(min(CHUNK, cap + 1 - len(out))):
                out += chunk
                if len(out) > cap:
                    break
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, OSError) as e:
        raise ValueError(f"the zip entry could not be unpacked: {e}") from None
    if len(out) > info.file_size:
        raise ValueError("the zip entry unpacks to more bytes than its header declares")
    if len(out) > limits.file_bytes:
        raise file_too_large(limits.file_bytes, f"the zip entry {info.filename[:200]!r}")
    return bytes(out)


def inflate(data: bytes | memoryview, limits: Limits, what: str) -> bytes:
    """A raw deflate stream (no zlib header, as PS3.5 A.5 and zip use) inflated a chunk at a
    time; LimitExceeded past the file limit or the ratio cap, ValueError if it is damaged
    or ends early."""
    engine = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    view = memoryview(data)
    pos = 0
    step = 64 * 1024
    try:
        while not engine.eof:
            if engine.unconsumed_tail:
                piece = engine.decompress(engine.unconsumed_tail, CHUNK)
            elif pos < len(view):
                piece = engine.decompress(view[pos : pos + step], CHUNK)
                pos += step
            else:
                break
            out += piece
            consumed = min(pos, len(view)) - len(engine.unconsumed_tail)
            if len(out) > limits.file_bytes:
                raise file_too_large(limits.file_bytes, what)
            if _ratio_passed(len(out), consumed, limits.inflate_ratio):
                raise ratio_too_high(limits.inflate_ratio, what)
    except zlib.error as e:
        raise ValueError(f"{what} could not be inflated: {e}") from None
    if not engine.eof:
        raise ValueError(f"{what} ends before its deflate stream does")
    return bytes(out)
