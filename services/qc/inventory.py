"""Tag inventories (what TCIA's TagSniffer reports, and more), from de-identified headers.

For each device — (Manufacturer, ManufacturerModelName, SoftwareVersions) — an inventory
lists every value seen, with how many instances carried it:

* ``text``: every standard text-bearing element (AE AS CS LO LT PN SH ST UC UR UT) at every
  sequence depth, by path — where a curator spots a name or an ID that survived;
* ``datetime``: every DA, DT and TM value — to check that dates were shifted;
* ``private``: every private element by creator and element, with its VR and value (a
  binary value as its length and hash);
* ``not_in_iod``: standard top-level elements the SOP class's IOD does not define (PS3.3
  module tables, as packaged by highdicom) — often vendor leftovers worth a look.

Private elements are named by group and offset in their creator's block (``0019xx02``,
with the creator beside it). Paths name sequence items with ``[]`` (every item of a
sequence counts under one path), e.g. ``00081032[].00080104``. Observations come from the
DICOM JSON headers deid already made, so an inventory grows one instance at a time and is
never rebuilt by reading files. Pure: no I/O besides reading the packaged IOD tables once.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydicom.datadict import dictionary_keyword, keyword_for_tag, tag_for_keyword

from services.common.dicom_json import Header, as_text, text

Section = Literal["text", "datetime", "private", "not_in_iod"]
SECTIONS: tuple[Section, ...] = ("text", "datetime", "private", "not_in_iod")
TEXT_VRS = frozenset({"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
DATETIME_VRS = frozenset({"DA", "DT", "TM"})
#: A value longer than this is shown cut, with its length (inventories stay readable).
MAX_VALUE = 256


@dataclass(frozen=True)
class Device:
    manufacturer: str
    model: str
    software: str

    def label(self) -> str:
        return " / ".join(p or "(none)" for p in (self.manufacturer, self.model, self.software))


@dataclass(frozen=True)
class Observation:
    """One value seen at one place of one instance's header."""

    device: Device
    section: Section
    path: str
    keyword: str
    vr: str
    value: str
    creator: str = ""


def device_of(header: Header) -> Device:
    return Device(
        text(header, "Manufacturer") or "",
        text(header, "ManufacturerModelName") or "",
        "\\".join(
            t for t in (as_text(v) for v in _values(header.get(_tag("SoftwareVersions")))) if t
        ),
    )


@cache
def _tag(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return f"{tag:08X}"


def _values(entry: Mapping[str, Any] | None) -> list[Any]:
    return list((entry or {}).get("Value") or ())


def _shown(value: Any) -> str:
    if isinstance(value, dict):  # PN in the JSON model: its groups, as DICOM writes them
        value = "=".join(value.get(g, "") for g in ("Alphabetic", "Ideographic", "Phonetic"))
        value = value.rstrip("=")
    shown = str(value)
    if len(shown) > MAX_VALUE:
        return f"{shown[:MAX_VALUE]}… ({len(shown)} characters)"
    return shown


def _binary(entry: Mapping[str, Any]) -> str:
    if "InlineBinary" in entry:
        raw = base64.b64decode(entry["InlineBinary"])
        return f"{len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()[:16]}"
    return "bulk data (not in the header)"


def _creators(header: Header) -> dict[tuple[int, int], str]:
    """Private creator of each (group, block) of one dataset level (PS3.5 7.8.1)."""
    out: dict[tuple[int, int], str] = {}
    for key, entry in header.items():
        tag = int(key, 16)
        group, elem = tag >> 16, tag & 0xFFFF
        if group % 2 and 0x10 <= elem <= 0xFF:
            vals = _values(entry)
            out[(group, elem)] = str(vals[0]).strip() if vals else ""
    return out


def _walk(
    header: Header, device: Device, prefix: str, iod: frozenset[int] | None
) -> Iterator[Observation]:
    creators = _creators(header)
    for key in sorted(header):
        entry = header[key]
        tag = int(key, 16)
        group, elem = tag >> 16, tag & 0xFFFF
        vr = str(entry.get("vr", "UN"))
        path = f"{prefix}{key}"
        if elem == 0 or group == 0x0002:
            continue  # group lengths and file meta are not the dataset's content
        if group % 2:
            if elem <= 0xFF:
                continue  # the creator elements themselves
            creator = creators.get((group, elem >> 8), "")
            # the block a creator got differs between files: name the element by its
            # offset in the block, as the safe-private tables do (``0019xx02``)
            path = f"{prefix}{group:04X}xx{elem & 0xFF:02X}"
            if vr == "SQ":
                for item in _values(entry):
                    yield from _walk(item, device, f"{path}[].", None)
                continue
            values = [_binary(entry)] if vr.startswith("O") or vr == "UN" else None
            for value in values or [_shown(v) for v in _values(entry)] or [""]:
                yield Observation(device, "private", path, "", vr, value, creator)
            continue
        keyword = keyword_for_tag(tag) or ""
        if iod is not None and not prefix and tag not in iod and keyword:
            yield Observation(device, "not_in_iod", path, keyword, vr, "")
        if vr == "SQ":
            for item in _values(entry):
                yield from _walk(item, device, f"{path}[].", None)
        elif vr in TEXT_VRS or vr in DATETIME_VRS:
            section: Section = "text" if vr in TEXT_VRS else "datetime"
            for value in _values(entry) or [None]:
                shown = "" if value is None else _shown(value)
                yield Observation(device, section, path, keyword, vr, shown)


@cache
def _standard(name: str) -> Any:
    return json.loads(resources.files("highdicom").joinpath("_standard", name).read_text())


def load_standard() -> None:
    """Read the standard's tables now (about half a second of JSON), so that the first
    header observed does not stall whoever observes it."""
    for name in ("sop_class_iod_map.json", "iod_module_map.json", "module_attribute_map.json"):
        _standard(name)


@cache
def iod_attributes(sop_class_uid: str) -> frozenset[int] | None:
    """Top-level attributes of the SOP class's IOD (every module, whatever its usage);
    None when the SOP class is not known here."""
    iod = _standard("sop_class_iod_map.json").get(sop_class_uid)
    if iod is None:
        return None
    modules = _standard("iod_module_map.json").get(iod, [])
    attributes = _standard("module_attribute_map.json")
    tags: set[int] = set()
    for module in modules:
        for attr in attributes.get(module["key"], []):
            if not attr.get("path"):
                tag = tag_for_keyword(attr["keyword"])
                if tag is not None:
                    tags.add(tag)
    # SOP Common is in every IOD; specific character set and the like come with it
    return frozenset(tags)


def observe(header: Header, sop_class_uid: str = "") -> list[Observation]:
    """Everything an inventory learns from one de-identified header."""
    iod = iod_attributes(sop_class_uid) if sop_class_uid else None
    return list(_walk(header, device_of(header), "", iod))


Key = tuple[str, str, str, str, str, str]  # device label, section, path, vr, creator, value


def key_of(o: Observation) -> Key:
    return (o.device.label(), o.section, o.path, o.vr, o.creator, o.value)


def tally(observations: Iterable[Observation]) -> Counter[Key]:
    """Count how many times each value was seen (one instance counts once per value)."""
    return Counter(set(map(key_of, observations)))


@dataclass(frozen=True)
class Change:
    key: Key
    before: int
    after: int


def diff(before: Mapping[Key, int], after: Mapping[Key, int]) -> list[Change]:
    """What differs between two inventories: values only one has, and changed counts."""
    changes = [
        Change(k, before.get(k, 0), after.get(k, 0))
        for k in set(before) | set(after)
        if before.get(k, 0) != after.get(k, 0)
    ]
    return sorted(changes, key=lambda c: c.key)


def keyword_of_path(path: str) -> str:
    """``00081032[].00080104`` → ``ProcedureCodeSequence > CodeMeaning``."""
    parts = [p.rstrip("[]") for p in path.split(".")]
    return " > ".join(dictionary_keyword(int(p, 16)) if _known(p) else p for p in parts)


def _known(key: str) -> bool:
    try:
        return bool(keyword_for_tag(int(key, 16)))
    except ValueError:
        return False
