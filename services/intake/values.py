"""Values that break their VR (PS3.5 6.2): length, character repertoire, and the syntax of
DA, TM, DT, UI, IS, DS, CS, AE and AS. Pure; reads the encoded bytes, so a value is checked
as it was sent, never converted, and never repeated in what is said about it."""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.charset import decode_bytes
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.valuerep import VALIDATORS

#: VRs whose values are checked (binary and numeric VRs are fixed-size by construction).
ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"})
TEXT_VRS = frozenset({"LO", "SH", "PN", "LT", "ST", "UC", "UT"})
#: VRs that hold one value, backslash and all (PS3.5 6.2: LT, ST, UT, UR).
SINGLE_VALUED = frozenset({"LT", "ST", "UT", "UR"})
#: Control characters a value may contain: ESC (ISO 2022), and in text VRs line breaks,
#: tab and form feed (PS3.5 6.1.3).
ALLOWED_CONTROL = {"LO": "\x1b", "SH": "\x1b", "PN": "\x1b", "UC": "\x1b"}
TEXT_CONTROL = "\x1b\r\n\t\x0c"
#: What each syntax is, for the sentence a submitter reads.
SYNTAX = {
    "DA": "a date YYYYMMDD",
    "TM": "a time HHMMSS.FFFFFF",
    "DT": "a date-time YYYYMMDDHHMMSS.FFFFFF&ZZXX",
    "UI": "a UID of digits and dots, at most 64 characters",
    "IS": "an integer string of at most 12 characters",
    "DS": "a decimal string of at most 16 characters",
    "CS": "a code string of upper-case letters, digits, space and _, at most 16 characters",
    "AE": "an AE title of at most 16 characters",
    "AS": "an age string nnnD, nnnW, nnnM or nnnY",
    "LO": "at most 64 characters without control characters",
    "SH": "at most 16 characters without control characters",
    "PN": "a person name of at most 64 characters per component group",
    "LT": "at most 10240 characters",
    "ST": "at most 1024 characters",
    "UC": "text without control characters",
    "UT": "text",
}


def first_invalid(ds: Dataset) -> str | None:
    """The sentence naming the first element whose value breaks its VR, if one does."""
    encodings = ds.get("SpecificCharacterSet") or "ISO_IR 6"
    if isinstance(encodings, str):
        encodings = [encodings]
    for path, tag, vr, values in _values(ds, "", list(encodings)):
        for value in values:
            if not _valid(vr, value):
                t = Tag(tag)
                name = keyword_for_tag(tag) or "private element"
                where = f"{path}({t.group:04X},{t.element:04X}) {name}"
                return (
                    f"{where} does not hold a valid {vr} value (it must be {SYNTAX[vr]}); "
                    "correct it at the source and send the file again"
                )
    return None


def _values(
    ds: Dataset, path: str, encodings: list[str]
) -> Iterator[tuple[str, int, str, list[str]]]:
    for tag in list(ds.keys()):
        if tag.group in (0x0002, 0x7FE0) or tag.element == 0:
            continue
        elem = ds.get_item(tag)
        if elem is None:
            continue
        vr = elem.VR
        if not vr:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
        if vr == "SQ":
            try:
                items = ds[tag].value
            except Exception:
                continue
            name = keyword_for_tag(tag) or f"({tag.group:04X},{tag.element:04X})"
            for i, item in enumerate(items or ()):
                yield from _values(item, f"{path}{name}[{i + 1}] > ", encodings)
            continue
        if vr not in ASCII_VRS and vr not in TEXT_VRS:
            continue
        raw = elem.value if isinstance(elem, RawDataElement) else None
        if raw is None or not isinstance(raw, bytes):
            continue
        if vr in ASCII_VRS:
            text = raw.decode("latin-1")
        else:
            try:
                text = decode_bytes(raw, encodings, {"0008,0005"})
            except Exception:
                text = raw.decode("latin-1")
        text = text.rstrip("\x00 ") if vr != "UI" else text.rstrip("\x00").rstrip(" ")
        if not text:
            continue
        parts = [text] if vr in SINGLE_VALUED else text.split("\\")
        yield path, int(tag), vr, [p.strip(" ") if vr not in TEXT_VRS else p for p in parts]


def _valid(vr: str, value: str) -> bool:
    if not value:
        return True  # an empty value in a multi-valued element is allowed
    allowed = ALLOWED_CONTROL.get(vr, TEXT_CONTROL if vr in TEXT_VRS else "")
    if any(ord(c) < 0x20 and c not in allowed for c in value):
        return False
    validator = VALIDATORS.get(vr)
    if validator is None:
        return True
    ok, _ = validator(vr, value)
    return bool(ok)
