"""Walking a DICOM encoding by its lengths alone, under caps on element count and
sequence depth (PS3.5 7.1 data elements, 7.5 sequences and items, A.4 encapsulated pixel
data): no value is decoded and nothing is copied, so a file can be checked whole — cut
short, too many elements, sequences too deep — before any parser builds objects for it.
"""

from __future__ import annotations

import struct
import time

from pydicom.datadict import keyword_for_tag

from services.common.bounds import LimitExceeded, Limits


class Truncated(Exception):
    """The data ends before an element it announces; the message says where."""


class Malformed(Exception):
    """An element overruns the sequence or item that holds it."""


#: Explicit VRs whose length is 32-bit, after two reserved bytes (PS3.5 Table 7.1-1).
LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})  # (Float, Double Float) Pixel Data
UNDEFINED = 0xFFFFFFFF
_ITEM_LE, _ITEM_BE = b"\xfe\xff\x00\xe0", b"\xff\xfe\xe0\x00"
#: tag, explicit VR and 16-bit length (the VR and length are re-read for the other forms)
_HEAD_LE, _HEAD_BE = struct.Struct("<HH2sH"), struct.Struct(">HH2sH")
_LENGTH_LE, _LENGTH_BE = struct.Struct("<L"), struct.Struct(">L")


def too_many_elements(limit: int) -> LimitExceeded:
    return LimitExceeded(
        f"the file holds more than {limit} data elements (IMARC_INTAKE_MAX_ELEMENTS); "
        "a real DICOM header has far fewer: check the file, or ask the site to raise the limit",
        "IMARC_INTAKE_MAX_ELEMENTS",
    )


def too_deep(limit: int) -> LimitExceeded:
    return LimitExceeded(
        f"the file nests sequences more than {limit} deep (IMARC_INTAKE_MAX_SEQUENCE_DEPTH); "
        "check the file, or ask the site to raise the limit",
        "IMARC_INTAKE_MAX_SEQUENCE_DEPTH",
    )


def _name(tag: int, unknown: str = "element") -> str:
    return keyword_for_tag(tag) or unknown


class Walker:
    """One walk over ``data``; ``top`` collects the tags of the dataset's own elements.

    Raises Truncated, Malformed, or LimitExceeded (too many elements, too deep)."""

    def __init__(self, data: bytes | memoryview, limits: Limits) -> None:
        self.data = data
        self.limits = limits
        self.elements = 0
        self.top: set[int] = set()

    def meta(self, pos: int) -> int:
        """Where the group 0002 elements from ``pos`` end (explicit VR little endian)."""
        return self._walk(pos, len(self.data), False, True, 0, None, meta_only=True)

    def dataset(self, pos: int, *, implicit: bool, little: bool) -> int:
        """Walk the dataset from ``pos`` to the end of the data; returns its end."""
        return self._walk(pos, len(self.data), implicit, little, 0, None, top=True)

    def _walk(
        self,
        pos: int,
        end: int,
        implicit: bool,
        little: bool,
        depth: int,
        until: int | None,
        *,
        meta_only: bool = False,
        top: bool = False,
    ) -> int:
        """Skip data elements from ``pos`` to ``end``, or to the delimiter of the
        undefined-length sequence or item ``until``; returns where they end."""
        data, size = self.data, len(self.data)
        head, long_length = (_HEAD_LE, _LENGTH_LE) if little else (_HEAD_BE, _LENGTH_BE)
        item_bytes = _ITEM_LE if little else _ITEM_BE
        limit = self.limits.elements
        while pos < end:
            if end - pos < 8:
                if end < size:
                    raise Malformed("an element overruns the item or sequence that holds it")
                raise Truncated("inside the header of a data element")
            group, element, vr, length = head.unpack_from(data, pos)
            tag = group << 16 | element
            if meta_only and group != 0x0002:
                return pos
            if tag in (ITEM_END, SEQ_END):
                return pos + 8
            if group == 0xFFFF:  # reserved: no data element has it (PS3.5 7.1)
                raise Malformed(f"(FFFF,{element:04X}) at byte {pos} is not a data element")
            self.elements += 1
            if self.elements > limit:
                raise too_many_elements(limit)
            if not self.elements & 0x3FFF:
                time.sleep(0)  # let the event loop's thread have the GIL now and then
            if top:
                self.top.add(tag)
            if implicit or group == 0xFFFE:  # items and delimiters carry no VR (PS3.5 7.5)
                vr = b""
                (length,) = long_length.unpack_from(data, pos + 4)
                pos += 8
            elif vr in LONG_VRS:
                if end - pos < 12:
                    raise Truncated("inside the header of a data element")
                (length,) = long_length.unpack_from(data, pos + 8)
                pos += 12
            else:
                pos += 8
            if length == UNDEFINED:
                # A sequence, an undefined-length item or encapsulated pixel data. The content
                # of an undefined-length UN is implicit VR little endian (PS3.5 6.2.2).
                inner = depth if tag == ITEM else self._deeper(depth)
                if vr == b"UN":
                    pos = self._walk(pos, end, True, True, inner, tag)
                else:
                    pos = self._walk(pos, end, implicit, little, inner, tag)
                continue
            if pos + length > end:
                if pos + length <= size:
                    raise Malformed(
                        f"({group:04X},{element:04X}) {_name(tag)} overruns the item or "
                        "sequence that holds it"
                    )
                raise Truncated(
                    f"inside ({group:04X},{element:04X}) {_name(tag)}, which needs "
                    f"{pos + length - size} more bytes"
                )
            if length >= 8 and tag not in PIXEL_TAGS and until not in PIXEL_TAGS:
                # A defined-length sequence or item (not a fragment of encapsulated pixel
                # data): walk what it holds, so that its elements count and its nesting is
                # bounded too.
                if vr == b"SQ" or ((implicit or vr == b"UN") and data[pos : pos + 4] == item_bytes):
                    un = vr == b"UN"
                    inner_implicit, inner_little = (True, True) if un else (implicit, little)
                    self._walk(
                        pos, pos + length, inner_implicit, inner_little, self._deeper(depth), None
                    )
                elif tag == ITEM:
                    self._walk(pos, pos + length, implicit, little, depth, None)
            pos += length
        if until is not None:
            if end < size:
                raise Malformed(f"({until >> 16:04X},{until & 0xFFFF:04X}) has no delimiter")
            raise Truncated(
                f"inside ({until >> 16:04X},{until & 0xFFFF:04X}) {_name(until, 'sequence')}, "
                "before its delimiter"
            )
        return pos

    def _deeper(self, depth: int) -> int:
        if depth + 1 > self.limits.depth:
            raise too_deep(self.limits.depth)
        return depth + 1
