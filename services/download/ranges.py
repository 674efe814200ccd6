"""HTTP range requests (RFC 9110 §14): which bytes of a representation a request asks
for. Pure: no I/O.

One range is served; a request for several (multipart/byteranges) is answered with the
whole representation, which RFC 9110 §14.2 allows, as it does ignoring a Range header
whose syntax is not understood. ``If-Range`` (§13.1.5) with another entity tag means
the client's partial copy is stale: the whole representation is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ONE_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``end`` (exclusive) of a representation of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


class Unsatisfiable(Exception):
    """No byte of the requested range exists (answered with 416)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the requested range is beyond the {size} bytes of this file")
        self.size = size

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


def requested_range(
    header: str | None, size: int, *, if_range: str | None = None, etag: str | None = None
) -> ByteRange | None:
    """The range to send, or None for the whole representation."""
    if not header or (if_range is not None and if_range.strip() != etag):
        return None
    m = _ONE_RANGE.fullmatch(header)
    if m is None:
        return None  # several ranges, or a unit other than bytes
    first, last = m.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise Unsatisfiable(size)
        return ByteRange(max(0, size - n), size, size)
    start = int(first)
    if last and int(last) < start:
        return None  # last < first: not a valid range, so not a range request at all
    if start >= size:
        raise Unsatisfiable(size)
    end = size if not last else min(int(last) + 1, size)
    return ByteRange(start, end, size)
