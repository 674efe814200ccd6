"""The DICOM JSON model (PS3.18 F.2): the one writer and the one reader of headers.

deid writes each de-identified header with :func:`header_json` (carried by
``instance.deidentified`` and ``series.published``); qc, catalog and download read it with
the accessors below. Both halves live here so that they cannot drift apart; a round-trip
property test on real files guards them (tests/common/test_dicom_json.py).

A header is a mapping from the 8-hex-digit tag to ``{"vr": ..., "Value": [...]}``; person
names are ``{"Alphabetic": ...}`` objects (F.2.2); bulk data (PixelData, binary VRs, values
over :data:`BULK_LIMIT` bytes) is left out.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from pydicom.datadict import DicomDictionary, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

Header = Mapping[str, Any]

# -- writing -------------------------------------------------------------------------------
#
# Same output as ``Dataset.to_json_dict`` for the elements it keeps, but raw elements of the
# common VRs are decoded here directly: building the header should not cost more than
# de-identifying the instance.

BULK_LIMIT = 1024
_BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_STRINGS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "SH", "TM", "UC", "UI"})
_TEXT = frozenset({"LT", "ST", "UT", "UR"})  # single-valued, no backslash splitting
_NUMBERS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "UV": "Q", "SV": "q"}
_SIMPLE_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO 2022 IR 6"})
_SKIP: dict[str, Any] = {}


def header_json(ds: Dataset) -> dict[str, Any]:
    """The DICOM JSON model of ``ds`` without PixelData, binary values or values > 1 KB."""
    charset = ds.get("SpecificCharacterSet", "")
    simple = (charset if isinstance(charset, str) else "\\".join(charset)) in _SIMPLE_CHARSETS
    little = bool(getattr(ds, "original_encoding", (None, True))[1] is not False)
    return _dataset(ds, simple, little)


def _vr(tag: int, elem: Any) -> str:
    vr = getattr(elem, "VR", None)
    if vr and vr != "UN":
        return str(vr)
    entry = DicomDictionary.get(tag)
    if entry is not None:
        return str(entry[0])  # may be ambiguous ("US or SS"): pydicom resolves those
    return str(vr or "UN")


def _dataset(ds: Dataset, simple: bool, little: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for base in sorted(ds.keys()):
        tag = int(base)
        if tag >> 16 == 0x7FE0 or tag & 0xFFFF == 0:
            continue
        elem = ds.get_item(base)
        vr = _vr(tag, elem)
        if vr in _BINARY or vr.startswith("O"):
            continue
        entry: dict[str, Any] | None = None
        if isinstance(elem, RawDataElement) and vr != "SQ" and " or " not in vr:
            entry = _raw_entry(elem, vr, simple, little)
            if entry is _SKIP:
                continue
        if entry is None:
            entry = _converted_entry(ds, base, simple, little)
        if entry is not None:
            out[f"{tag:08X}"] = entry
    return out


def _raw_entry(elem: RawDataElement, vr: str, simple: bool, little: bool) -> dict[str, Any] | None:
    """JSON for a raw element, or None to let pydicom convert it."""
    raw = elem.value
    if raw is None or len(raw) == 0:
        return {"vr": vr}
    if len(raw) > BULK_LIMIT:
        return _SKIP
    if vr in _NUMBERS:
        code = _NUMBERS[vr]
        size = struct.calcsize("<" + code)
        if len(raw) % size:
            return None
        fmt = ("<" if little else ">") + code * (len(raw) // size)
        return {"vr": vr, "Value": list(struct.unpack(fmt, raw))}
    if not simple and vr not in ("UI", "DA", "DT", "TM", "AS", "CS", "IS", "DS"):
        return None
    text = raw.decode("latin-1")
    if vr in _TEXT:
        value = text.rstrip(" \x00")
        return {"vr": vr, "Value": [value]} if value else {"vr": vr}
    parts = [p.strip(" \x00") for p in text.split("\\")]
    if vr in ("IS", "DS"):
        try:
            numbers: list[Any] = [
                (int(p) if vr == "IS" else float(p)) if p else None for p in parts
            ]
        except ValueError:
            return None
        if all(n is None for n in numbers):
            return {"vr": vr}
        return {"vr": vr, "Value": numbers}
    if vr == "PN":
        if "=" in text:
            return None
        values = [{"Alphabetic": p} if p else None for p in parts]
        return {"vr": vr, "Value": values} if any(values) else {"vr": vr}
    if vr in _STRINGS:
        if len(parts) == 1 and not parts[0]:
            return {"vr": vr}
        return {"vr": vr, "Value": [p if p else None for p in parts]}
    return None


def _converted_entry(ds: Dataset, tag: Any, simple: bool, little: bool) -> dict[str, Any] | None:
    try:
        elem = ds[tag]
    except Exception:  # an undecodable value has no place in the catalog header
        return None
    if elem.VR == "SQ":
        items = elem.value if isinstance(elem.value, Sequence) else []
        return {"vr": "SQ", "Value": [_dataset(item, simple, little) for item in items]}
    if elem.VR in _BINARY or elem.VR.startswith("O"):
        return None
    entry = elem.to_json_dict(None, BULK_LIMIT)
    if "InlineBinary" in entry or "BulkDataURI" in entry:
        return None
    if len(repr(entry.get("Value", ""))) > BULK_LIMIT:
        return None
    return entry


# -- reading -------------------------------------------------------------------------------


@cache
def tag(keyword: str) -> str:
    """The DICOM JSON key (upper-case hex ``GGGGEEEE``) of a data dictionary keyword."""
    t = tag_for_keyword(keyword)
    if t is None:
        raise KeyError(f"{keyword} is not a DICOM keyword")
    return f"{t:08X}"


def values(header: Header, keyword: str) -> list[Any]:
    element = header.get(tag(keyword))
    if not element:
        return []
    return list(element.get("Value") or ())


def as_text(value: Any) -> str | None:
    """One JSON value as text: a person name's alphabetic group, else ``str``; None when empty."""
    if isinstance(value, dict):  # PN: the alphabetic group is the one NBIA shows
        value = value.get("Alphabetic")
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def text(header: Header, keyword: str) -> str | None:
    """The first value as text, or None when the attribute is absent or empty."""
    vals = values(header, keyword)
    return as_text(vals[0]) if vals else None


def multi_text(header: Header, keyword: str) -> str | None:
    """All values joined with a backslash, the DICOM value separator (PS3.5 6.4)."""
    parts = [t for t in (as_text(v) for v in values(header, keyword)) if t is not None]
    return "\\".join(parts) or None


def integer(header: Header, keyword: str) -> int | None:
    """An IS value; DICOM JSON gives numbers, but strings are tolerated (PS3.18 F.2.3)."""
    vals = values(header, keyword)
    if not vals or vals[0] is None:
        return None
    try:
        return int(float(vals[0]))
    except (TypeError, ValueError):
        return None


def number(header: Header, keyword: str) -> float | None:
    vals = values(header, keyword)
    if not vals or vals[0] is None:
        return None
    try:
        return float(vals[0])
    except (TypeError, ValueError):
        return None


def dicom_date(header: Header, keyword: str) -> str | None:
    """A DA value as ``YYYYMMDD`` (PS3.5 6.2), or None when absent or not a real date.

    The old ACR-NEMA form ``YYYY.MM.DD`` is accepted because old archives still hold it.
    """
    raw = text(header, keyword)
    if raw is None:
        return None
    raw = raw.replace(".", "")
    if len(raw) != 8 or not raw.isdigit():
        return None
    try:
        datetime.strptime(raw, "%Y%m%d")
    except ValueError:
        return None
    return raw


def int_at(header: Header, key: str) -> int | None:
    """An IS/number value by its tag key (``"00200013"``): a JSON number or a string
    (PS3.18 F.2.3.1 allows both); None when absent or not a number."""
    vals = (header.get(key) or {}).get("Value") or []
    if not vals or vals[0] is None:
        return None
    try:
        return int(float(str(vals[0]).strip()))
    except ValueError:
        return None
