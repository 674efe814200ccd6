"""A STORED zip whose every byte is known before any object is read. Pure: no I/O.

With each entry's size and CRC-32 known in advance (recorded when the object was
written), the local headers carry them (general purpose bit 3 clear, no data
descriptors), so the archive's length, an ETag and the bytes of any range follow from
the entries alone (PKWARE APPNOTE 6.3.10: local file header 4.3.7, central directory
header 4.3.12, end of central directory 4.3.16; ZIP64 4.3.14, 4.3.15 and 4.5.3 when a
size, an offset or the number of entries does not fit the classic fields).

:class:`Layout` lists the archive as pieces: literal bytes (headers, small entries such
as LICENSE) and object spans (read from the store by whoever sends the archive).
"""

from __future__ import annotations

import bisect
import hashlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_END64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<IIQI")
_MAX32 = 0xFFFFFFFF
_MAX16 = 0xFFFF
_UNIX_FILE = (0o100644 << 16) & _MAX32  # external attributes: a regular file, rw-r--r--
_MADE_BY_UNIX = 3 << 8


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One file of the archive: literal ``data``, or ``source`` (an object) of ``size``
    bytes with checksum ``crc32``."""

    name: str
    size: int
    crc32: int
    data: bytes | None = None
    source: T | None = None

    @classmethod
    def literal(cls, name: str, data: bytes) -> Entry[T]:
        import zlib

        return cls(name, len(data), zlib.crc32(data), data=data)


@dataclass(frozen=True)
class Piece(Generic[T]):
    """``length`` bytes at ``start``: literal ``data``, or the bytes of ``source``."""

    start: int
    length: int
    data: bytes | None = None
    source: T | None = None


def _dos_time(when: datetime) -> tuple[int, int]:
    year = min(max(when.year, 1980), 2107)
    time = (when.hour << 11) | (when.minute << 5) | (when.second // 2)
    date = ((year - 1980) << 9) | (when.month << 5) | when.day
    return time, date


class Layout(Generic[T]):
    """The byte layout of a STORED zip of ``entries``, all dated ``when``.

    ``zip64_at`` is the size, offset and count from which ZIP64 fields are used (the
    format's limits; tests lower it to exercise ZIP64 on small archives).
    """

    def __init__(
        self, entries: Sequence[Entry[T]], when: datetime, *, zip64_at: int = _MAX32
    ) -> None:
        self.pieces: list[Piece[T]] = []
        time, date = _dos_time(when)
        central: list[bytes] = []
        offset = 0
        literal = bytearray()

        def flush() -> None:
            nonlocal literal
            if literal:
                start = offset - len(literal)
                self.pieces.append(Piece(start, len(literal), data=bytes(literal)))
                literal = bytearray()

        for e in entries:
            name = e.name.encode()
            flags = 0 if e.name.isascii() else 0x0800  # bit 11: the name is UTF-8
            big = e.size >= zip64_at
            far = offset >= zip64_at
            version = 45 if big or far else 20
            local_extra = struct.pack("<HHQQ", 1, 16, e.size, e.size) if big else b""
            size32 = _MAX32 if big else e.size
            header = _LOCAL.pack(
                0x04034B50, version, flags, 0, time, date, e.crc32, size32, size32,
                len(name), len(local_extra),
            ) + name + local_extra  # fmt: skip
            # the central directory's ZIP64 extra holds only the fields that overflow
            fields = [e.size, e.size] if big else []
            if far:
                fields.append(offset)
            central_extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields)
            central.append(
                _CENTRAL.pack(
                    0x02014B50, _MADE_BY_UNIX | version, version, flags, 0, time, date,
                    e.crc32, size32, size32, len(name),
                    len(central_extra) if fields else 0, 0, 0, 0, _UNIX_FILE,
                    _MAX32 if far else offset,
                ) + name + (central_extra if fields else b"")
            )  # fmt: skip
            literal += header
            offset += len(header)
            if e.data is not None:
                literal += e.data
                offset += len(e.data)
            else:
                flush()
                self.pieces.append(Piece(offset, e.size, source=e.source))
                offset += e.size

        directory = b"".join(central)
        cd_start, cd_size, count = offset, len(directory), len(entries)
        literal += directory
        offset += cd_size
        if count >= min(zip64_at, _MAX16) or cd_start >= zip64_at or cd_size >= zip64_at:
            end64_at = offset
            literal += _END64.pack(
                0x06064B50, _END64.size - 12, _MADE_BY_UNIX | 45, 45, 0, 0,
                count, count, cd_size, cd_start,
            )  # fmt: skip
            literal += _LOCATOR64.pack(0x07064B50, 0, end64_at, 1)
            offset += _END64.size + _LOCATOR64.size
            literal += _END.pack(0x06054B50, 0, 0, _MAX16, _MAX16, _MAX32, _MAX32, 0)
        else:
            literal += _END.pack(0x06054B50, 0, 0, count, count, cd_size, cd_start, 0)
        offset += _END.size
        flush()
        self.size = offset
        self._starts = [p.start for p in self.pieces]

    def slices(self, start: int, end: int) -> Iterator[tuple[Piece[T], int, int]]:
        """The pieces overlapping bytes ``start`` to ``end`` (exclusive), each with the
        offset and length of the overlap within the piece."""
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        for piece in self.pieces[i:]:
            if piece.start >= end:
                break
            lo = max(start, piece.start) - piece.start
            hi = min(end, piece.start + piece.length) - piece.start
            if hi > lo:
                yield piece, lo, hi - lo


def etag(parts: Sequence[object]) -> str:
    """A strong entity tag naming exactly these archive contents."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    return f'"{digest[:40]}"'
