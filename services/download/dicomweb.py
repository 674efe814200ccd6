"""WADO-RS (DICOM PS3.18 §10.4): multipart/related framing, instance metadata with a
bulk data reference, and the frames of native pixel data. Pure: no I/O.

Instances are sent as they were published (their own transfer syntax). Frames and bulk
data are served for native (uncompressed) pixel data only; for encapsulated pixel data
the instance itself is what a client retrieves.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID

from services.common.dicom_json import header_json

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
OCTETS = "application/octet-stream"
PIXEL_DATA = "7FE00010"


class NotNative(ValueError):
    """Frames or bulk data asked of encapsulated (compressed) pixel data."""


def boundary() -> str:
    return f"imarc-{secrets.token_hex(12)}"


def content_type(part_type: str, mark: str) -> str:
    return f'multipart/related; type="{part_type}"; boundary={mark}'


def part_head(mark: str, part_type: str) -> bytes:
    return f"--{mark}\r\nContent-Type: {part_type}\r\n\r\n".encode()


def part_tail() -> bytes:
    return b"\r\n"


def closing(mark: str) -> bytes:
    return f"--{mark}--\r\n".encode()


def multipart(parts: Sequence[bytes], part_type: str, mark: str) -> Iterator[bytes]:
    """A multipart/related body of small parts held in memory (frames, bulk data)."""
    for p in parts:
        yield part_head(mark, part_type)
        yield p
        yield part_tail()
    yield closing(mark)


def metadata(ds: Dataset, bulk_uri: str) -> dict[str, Any]:
    """The DICOM JSON of an instance (read without its pixel data), with a BulkDataURI
    for the pixel data when the instance is an image (PS3.18 F.2.6)."""
    out = header_json(ds)
    if "Rows" in ds and "Columns" in ds:
        vr = "OW" if int(ds.get("BitsAllocated", 16)) > 8 else "OB"
        out[PIXEL_DATA] = {"vr": vr, "BulkDataURI": bulk_uri}
    return out


def _native(ds: Dataset) -> None:
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2.1")))
    if syntax.is_compressed or "PixelData" not in ds:
        raise NotNative(
            "this instance's pixel data is not native (uncompressed); retrieve the instance "
            "itself (application/dicom) instead of its frames or bulk data"
        )


def pixel_data(ds: Dataset) -> bytes:
    _native(ds)
    return bytes(ds.PixelData)


def frames(ds: Dataset, numbers: Sequence[int]) -> list[bytes]:
    """Frames (numbered from 1, PS3.18 §10.4.1.1.6) of native pixel data."""
    _native(ds)
    bits = int(ds.BitsAllocated)
    if bits % 8:
        raise NotNative("frames of 1-bit pixel data are not served; retrieve the instance")
    size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * bits // 8
    count = int(ds.get("NumberOfFrames", 1) or 1)
    data = ds.PixelData
    out = []
    for n in numbers:
        if not 1 <= n <= count:
            raise IndexError(f"frame {n} does not exist: this instance has {count} frame(s)")
        out.append(bytes(data[(n - 1) * size : n * size]))
    return out


def frame_numbers(text: str) -> list[int]:
    """``1,3,5`` → [1, 3, 5]; ValueError for anything else."""
    try:
        numbers = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{text!r} is not a comma-separated list of frame numbers") from None
    if not numbers:
        raise ValueError("give at least one frame number")
    return numbers
