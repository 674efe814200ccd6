"""Private attributes under Retain Safe Private (PS3.15 E.3.10): an element is kept only for
the creator, group, element offset and VR the safe list names, and its value is kept,
shifted (dates) or re-rooted (UIDs) as the list says; everything else private goes.
"""

from __future__ import annotations

import re
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from .actions import Actions, _as_text, _tag_str
from .dates import shift_multi
from .rules import BINARY_VRS, TEXT_VRS
from .tables import normalise_creator

_PRIVATE_TEXT_VRS = TEXT_VRS | {"DA", "DT", "UI", "CS"}
_NUMBER_SIZES = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "UV": 8, "SV": 8, "AT": 4}
_NUMBERS_RE = re.compile(r"^[\s\d.+\-eE\\]*$")


def _fits(vr: str, value: Any) -> bool:
    """Whether a kept private value can be what its listed VR says (a read-as-UN value
    must be whole numbers of that VR; DS/IS must be numbers): text under a numeric VR is
    not safe because the list calls the element safe."""
    if isinstance(value, bytes):
        size = _NUMBER_SIZES.get(vr)
        if size is not None:
            return len(value) % size == 0
        if vr in ("DS", "IS"):
            return _NUMBERS_RE.match(value.decode("latin-1").rstrip("\x00 ")) is not None
        return True
    if vr in ("DS", "IS") and isinstance(value, str):
        return _NUMBERS_RE.match(value) is not None
    return True


class PrivateRules(Actions):
    """The private-tag rules of one run."""

    def private_element(
        self,
        ds: Dataset,
        tag: int,
        prefix: str,
        blocks_kept: set[tuple[int, int]],
        creator_names: dict[int, str],
    ) -> None:
        group, elem_no = tag >> 16, tag & 0xFFFF
        rule = None
        creator = ""
        if self.private and elem_no > 0x00FF and group > 0x0008 and group != 0xFFFF:
            creator_tag = (group << 16) | (elem_no >> 8)
            cached = creator_names.get(creator_tag)
            if cached is None:
                creator_elem = ds.get_item(creator_tag)
                value = None if creator_elem is None else creator_elem.value
                if isinstance(value, bytes):
                    cached = normalise_creator(value.decode("latin-1"))
                else:
                    cached = normalise_creator(str(value or ""))
                creator_names[creator_tag] = cached
            creator = cached
            rule = self.private.get((group, creator, elem_no & 0xFF))
        raw = ds.get_item(tag)
        file_vr = getattr(raw, "VR", None)
        if rule is not None and file_vr is not None and not rule.allows(str(file_vr)):
            rule = None  # a listed element holding something else than the list says
        if rule is None:
            del ds[tag]
            # Only a listed creator's name goes into the audit: an unknown one could be PHI.
            self.note(prefix + _tag_str(tag), tag, "removed", "")
            return
        path = f'{prefix}({group:04X},"{creator}",{elem_no & 0xFF:02X})'
        vr = rule.vr if file_vr in (None, "UN") else str(file_vr)
        if rule.action == "date":
            vr = vr if vr in ("DA", "DT") else "DT"
        kept = self.private_value(ds, tag, raw, vr, file_vr, rule.action, path)
        if kept:
            blocks_kept.add((group, elem_no >> 8))

    def private_value(
        self, ds: Dataset, tag: int, raw: Any, vr: str, file_vr: str | None, kind: str, path: str
    ) -> bool:
        """Keep, shift or re-root one listed private value; False when removed."""
        if vr == "PN":
            del ds[tag]
            self.note(path, tag, "removed", "")
            return False
        if vr == "SQ" or file_vr == "SQ":
            elem = self.element(ds, tag)
            if elem is None or not isinstance(elem.value, Sequence):
                del ds[tag]
                self.note(path, tag, "removed", "")
                return False
            for index, item in enumerate(elem.value):
                self.dataset(item, f"{path}[{index}]", tag)
            self.note(path, tag, "kept", "")
            return True
        value = raw.value if isinstance(raw, RawDataElement) else None
        if value is None:
            elem = self.element(ds, tag)
            value = None if elem is None else elem.value
        needs_text = kind in ("date", "uid") or vr in _PRIVATE_TEXT_VRS
        if not needs_text:
            if not _fits(vr, value) or (
                vr in BINARY_VRS
                and isinstance(value, bytes)
                and self.scrubber.contains(value.decode("latin-1"))
            ):
                del ds[tag]
                self.note(path, tag, "removed", "")
                return False
            self.note(path, tag, "kept", "")
            return True
        if isinstance(value, bytes):
            text = value.decode("latin-1").rstrip("\x00 ")
        else:
            text = "\\".join(_as_text(value))
        new_text: str | None = text
        action = "kept"
        if not text:
            pass
        elif kind == "date" or vr in ("DA", "DT"):
            if self.c.dates == "modified":
                new_text = shift_multi(
                    text.strip(), self.offset, vr if vr in ("DA", "DT") else "DT", keep_zone=False
                )
                action = "shifted"
            elif self.c.dates == "none":
                new_text = None
        elif kind == "uid" or vr == "UI":
            parts = [p.strip() for p in text.split("\\")]
            if self.c.retain_uids:
                pass
            elif all(re.fullmatch(r"[0-9.]+", p) for p in parts):
                new_text = "\\".join(self.remap(p) for p in parts)
                action = "uid"
            else:
                new_text = None
        else:
            cleaned = self.scrubber.clean(text)
            if cleaned != text:
                new_text, action = cleaned, "cleaned"
        if new_text is None:
            del ds[tag]
            self.note(path, tag, "removed", "")
            return False
        if new_text != text:
            if file_vr in (None, "UN") or (isinstance(value, bytes) and file_vr not in TEXT_VRS):
                encoded = new_text.encode("latin-1", "replace")
                if len(encoded) % 2:
                    encoded += b"\x00" if vr == "UI" else b" "
                ds[tag] = DataElement(tag, file_vr or "UN", encoded)
            else:
                ds[tag] = DataElement(tag, str(file_vr), new_text)
        self.note(path, tag, action, "")
        return True
