"""getDicomTags: one image's header in NBIA's NCIADicomTextObject layout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydicom.datadict import dictionary_description

from services.common.dicom_json import Header, as_text

DICOM_TAG_COLS = ("element", "name", "data")

_SKIPPED_TAGS = frozenset({"7FE00010", "FFFCFFFC"})  # Pixel Data, Data Set Trailing Padding


def _tag_name(key: str) -> str:
    t = int(key, 16)
    if (t >> 16) % 2 == 1:
        return "Private Tag" if t & 0xFF00 else "Private Creator"
    try:
        return str(dictionary_description(t))
    except KeyError:
        return "Unknown"


def _tag_data(element: Mapping[str, Any]) -> str | None:
    parts = [t for t in (as_text(v) for v in element.get("Value") or ()) if t is not None]
    return "\\".join(parts) if parts else None


def dicom_tag_rows(header: Header, depth: int = 0) -> list[dict[str, Any]]:
    """The header of one image as NBIA's getDicomTags rows, in tag order.

    ``element`` is ``(GGGG,EEEE)`` in upper-case hex with one ``>`` per level of sequence
    nesting; a sequence's items follow its row and a repeated row named ``End <Name>``
    closes it; multiple values are joined with ``\\``. File meta (group 0002) sorts first;
    Pixel Data is never listed. tcia_utils' getSegRefSeries relies on this layout.
    """
    rows: list[dict[str, Any]] = []
    prefix = ">" * depth
    for key in sorted(header):
        if key in _SKIPPED_TAGS or len(key) != 8:
            continue
        element = header[key] or {}
        label = f"{prefix}({key[:4]},{key[4:]})"
        name = _tag_name(key)
        if element.get("vr") == "SQ":
            rows.append({"element": label, "name": name})
            for item in element.get("Value") or ():
                if isinstance(item, Mapping):
                    rows.extend(dicom_tag_rows(item, depth + 1))
            rows.append({"element": label, "name": f"End {name}"})
        else:
            row = {"element": label, "name": name, "data": _tag_data(element)}
            rows.append({k: v for k, v in row.items() if v is not None})
    return rows
