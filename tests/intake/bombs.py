"""Hostile submissions, built without ever holding what they inflate to: a small zip whose
member inflates to gigabytes, a deflated dataset that does the same, a DICM-prefixed file
of zeros, sequences nested deep and files of very many elements. Used by the tests and by
bench/bomb_bench.py."""

from __future__ import annotations

import io
import struct
import zlib

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"  # no pixels: a deep tree of content is normal
MiB = 1024 * 1024
GiB = 1024 * MiB


def deflated_zeros(size: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``size`` zero bytes (a multiple of 1 MiB) and its CRC-32.

    Each MiB is compressed after a full flush, so its compressed form is the same every
    time: the stream is one piece repeated, built in milliseconds."""
    assert size % MiB == 0
    engine = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    engine.compress(b"")
    piece = engine.compress(bytes(MiB)) + engine.flush(zlib.Z_FULL_FLUSH)
    again = engine.compress(bytes(MiB)) + engine.flush(zlib.Z_FULL_FLUSH)
    assert piece == again
    stream = piece * (size // MiB) + engine.flush()
    crc = 0
    block = bytes(16 * MiB)
    for _ in range(size // len(block)):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(bytes(size % len(block)), crc)
    return stream, crc


def zip_bomb(size: int = 2 * GiB, name: str = "zeros.dcm") -> bytes:
    """A zip (stored by hand: zipfile cannot write a precompressed member) of one member
    that inflates to ``size`` zero bytes."""
    stream, crc = deflated_zeros(size)
    raw = name.encode()
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(stream), size, len(raw), 0
    )
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(stream), size, len(raw),
        0, 0, 0, 0, 0o644 << 16, 0,
    )  # fmt: skip
    offset = len(local) + len(raw) + len(stream)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central) + len(raw), offset, 0)
    return local + raw + stream + central + raw + end


def _meta(syntax: str) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = BASIC_TEXT_SR
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.file_meta.TransferSyntaxUID = syntax
    out = io.BytesIO()
    out.write(bytes(128) + b"DICM")
    pydicom.filewriter.write_file_meta_info(out, ds.file_meta, enforce_standard=True)
    return out.getvalue()


def deflate_bomb(size: int = GiB) -> bytes:
    """A Part 10 file in Deflated Explicit VR Little Endian whose dataset inflates to
    ``size`` zero bytes (about 1 MB for 1 GiB)."""
    stream, _ = deflated_zeros(size)
    return _meta(DeflatedExplicitVRLittleEndian) + stream


def dicm_zeros(size: int = 200 * MiB) -> bytes:
    """``size`` bytes of zeros with the DICM prefix at byte 128."""
    data = bytearray(size)
    data[128:132] = b"DICM"
    return bytes(data)


def _element(tag: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def _identified() -> bytes:
    """The identifying elements (explicit VR little endian), so that only the cap holds."""
    return b"".join(
        _element(tag, vr, value)
        for tag, vr, value in (
            (0x00080016, b"UI", BASIC_TEXT_SR.encode() + b"\x00"),
            (0x00080018, b"UI", b"1.2.3.4\x00"),
            (0x00100020, b"LO", b"P1"),
            (0x0020000D, b"UI", b"1.2.3\x00"),
            (0x0020000E, b"UI", b"1.2.3.5\x00"),
        )
    )


def deep_sequences(depth: int, *, defined: bool = False) -> bytes:
    """A file whose (0040,A730) ContentSequence nests ``depth`` levels deep: undefined
    lengths with delimiters, or (``defined``) explicit lengths."""
    inner = b""
    for _ in range(depth):
        if defined:
            item = struct.pack("<HHI", 0xFFFE, 0xE000, len(inner)) + inner
            inner = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, len(item)) + item
        else:
            item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner
            item += struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
            inner = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + item
            inner += struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return _meta(ExplicitVRLittleEndian) + _identified() + inner


def many_elements(count: int) -> bytes:
    """A file of ``count`` empty private elements after its identifying ones."""
    filler = struct.pack("<HH2sH", 0x0009, 0x1001, b"LO", 0) * count
    return _meta(ExplicitVRLittleEndian) + _identified() + filler
