"""Pixel screening (which instances may carry burned-in PHI) and rule-based blanking.

Header de-identification cannot see text burned into pixels (PS3.15 E.3.1, Clean Pixel Data).
Instances whose headers say they may carry such text are held for a curator, unless a profile
rule names the rectangles to blank for that device and image size (as CTP's
DicomPixelAnonymizer does). Blanking works on native pixel data only and never decodes or
re-encodes anything else: untouched PixelData stays byte-identical.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from .profile import BlankRule, Profile

_SC_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_US_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",  # US Image
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume
        "1.2.840.10008.5.1.4.1.1.6.3",  # Photoacoustic
        "1.2.840.10008.5.1.4.1.1.3.1",  # US Multi-frame
        "1.2.840.10008.5.1.4.1.1.6",  # US Image (retired)
        "1.2.840.10008.5.1.4.1.1.3",  # US Multi-frame (retired)
    }
)
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
# Date of Secondary Capture and the Secondary Capture Device attributes (CTP's filter).
_SC_DEVICE_TAGS = (0x00181012, 0x00181016, 0x00181018, 0x00181019)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, str | bytes):
        return value.decode("latin-1") if isinstance(value, bytes) else value
    try:
        return "\\".join(str(v) for v in value)
    except TypeError:
        return str(value)


def has_pixels(ds: Dataset) -> bool:
    return any(tag in ds for tag in _PIXEL_TAGS)


def recognizable_features(ds: Dataset, profile: Profile) -> str | None:
    """Why this instance is held as a face (Recognizable Visual Features YES, PS3.3
    C.7.6.1.1.6), or None: not a face, or the profile defaces its modality."""
    if _text(ds, "RecognizableVisualFeatures").strip().upper() != "YES":
        return None
    modality = _text(ds, "Modality").strip().upper()
    if modality and modality in profile.defacing_modalities:
        return None
    return (
        f"recognizable visual features: the {modality or 'unknown-modality'} instance says "
        "Recognizable Visual Features (0028,0302) YES and the profile has no defacing step "
        "for that modality; review and release it, or name the modality in the profile's "
        "defacing_modalities once a defacing step covers it"
    )


def screen(ds: Dataset, profile: Profile) -> list[str]:
    """Reasons this instance may carry burned-in PHI; empty when none applies."""
    if not has_pixels(ds):
        return []
    reasons: list[str] = []
    if _text(ds, "BurnedInAnnotation").strip().upper() == "YES":
        reasons.append("BurnedInAnnotation is YES")
    image_type = [v.strip().upper() for v in _text(ds, "ImageType").split("\\")]
    if "SECONDARY" in image_type:
        reasons.append("ImageType is SECONDARY")
    if any("SCREEN SAVE" in v or v == "SAVE" for v in image_type):
        reasons.append("ImageType is SCREEN SAVE")
    if (
        "SAVE" in _text(ds, "SeriesDescription").upper()
        and "SCREEN" in _text(ds, "SeriesDescription").upper()
    ):
        reasons.append("series described as a screen save")
    sop_class = _text(ds, "SOPClassUID").strip()
    if sop_class == _SC_PREFIX or sop_class.startswith(_SC_PREFIX + "."):
        reasons.append("Secondary Capture SOP class")
    elif any(tag in ds for tag in _SC_DEVICE_TAGS):
        reasons.append("secondary capture device attributes present")
    if _text(ds, "Modality").strip().upper() == "US" or sop_class in _US_CLASSES:
        reasons.append("ultrasound")
    manufacturer = _text(ds, "Manufacturer").casefold()
    model = _text(ds, "ManufacturerModelName").casefold()
    modality = _text(ds, "Modality").strip().upper()
    for rule in profile.pixel_rules:
        if (
            rule.manufacturer.casefold() in manufacturer
            and rule.model.casefold() in model
            and (not rule.modality or rule.modality.upper() == modality)
        ):
            reasons.append(rule.reason)
    for group in range(0x6000, 0x6020, 2):
        bit_position = ds.get((group, 0x0102))
        bits_allocated = ds.get((group, 0x0100))
        if (bit_position is not None and bit_position.value not in (None, 0, b"\x00\x00")) or (
            bits_allocated is not None and bits_allocated.value not in (None, 1, b"\x01\x00")
        ):
            reasons.append("overlay embedded in pixel data")
            break
    return reasons


def matching_blank_rule(ds: Dataset, profile: Profile) -> BlankRule | None:
    manufacturer = _text(ds, "Manufacturer").casefold()
    model = _text(ds, "ManufacturerModelName").casefold()
    rows = ds.get("Rows")
    columns = ds.get("Columns")
    for rule in profile.blank_rectangles:
        if (
            rule.manufacturer.casefold() in manufacturer
            and rule.model.casefold() in model
            and (rule.rows is None or rule.rows == rows)
            and (rule.columns is None or rule.columns == columns)
        ):
            return rule
    return None


class BlankingError(ValueError):
    """The pixel data cannot be blanked in place (compressed, or an unusual layout)."""


def blank(ds: Dataset, rectangles: Sequence[tuple[int, int, int, int]]) -> None:
    """Set the rectangles ``(x, y, width, height)`` to 0 in every frame, in place.

    Works on the stored bytes of native (uncompressed) PixelData, so nothing outside the
    rectangles changes and no codec is involved.
    """
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    if not ts or ts.is_compressed or ts == "1.2.840.10008.1.2.1.99":
        raise BlankingError("pixel data is compressed or deflated; blanking needs native data")
    if 0x7FE00010 not in ds:
        raise BlankingError("no PixelData to blank")
    if str(ds.get("PhotometricInterpretation", "")).startswith("YBR_FULL_42"):
        raise BlankingError("subsampled YBR pixel data cannot be blanked in place")
    bits = int(ds.BitsAllocated)
    if bits not in (8, 16, 32):
        raise BlankingError(f"BitsAllocated {bits} is not supported for blanking")
    rows, columns = int(ds.Rows), int(ds.Columns)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    planar = int(ds.get("PlanarConfiguration", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    dtype = np.dtype(f"u{bits // 8}").newbyteorder("<" if ts.is_little_endian else ">")
    data = bytearray(ds.PixelData)
    expected = rows * columns * samples * frames * (bits // 8)
    if len(data) < expected:
        raise BlankingError("PixelData is shorter than Rows x Columns x frames")
    arr = np.frombuffer(memoryview(data)[:expected], dtype=dtype)
    if samples > 1 and planar == 1:
        view = arr.reshape(frames, samples, rows, columns)
        for x, y, w, h in rectangles:
            view[:, :, y : y + h, x : x + w] = 0
    else:
        view = arr.reshape(frames, rows, columns, samples)
        for x, y, w, h in rectangles:
            view[:, y : y + h, x : x + w, :] = 0
    ds.PixelData = bytes(data)
