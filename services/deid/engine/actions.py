"""Standard actions of PS3.15 Table E.1-1a on one attribute: keep (cleaning text), empty,
dummy, re-root UIDs, clean, shift dates; and the curve/overlay rule (50xx, 60xx).

``Actions`` holds one run's state (profile, keys, offset, UID map, audit); the private-tag
rules (``private``) and the walker that picks an action per attribute (``dispatch``) build
on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydicom.datadict import DicomDictionary, dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary
from pydicom.valuerep import PersonName

from .dates import DUMMY_DA, DUMMY_DT, DUMMY_TM, shift_multi
from .keys import Keys, new_uid
from .rules import BINARY_VRS, TEXT_VRS, CompiledProfile
from .scrub import Scrubber
from .tables import private_rules

DUMMY_TEXT = "ANONYMIZED"

_AUDIT_ACTIONS = frozenset(
    {"removed", "replaced", "shifted", "emptied", "dummy", "kept", "cleaned", "uid"}
)
_MAX_LEN = {
    "AE": 16,
    "CS": 16,
    "SH": 16,
    "LO": 64,
    "PN": 64,
    "DS": 16,
    "IS": 12,
    "ST": 1024,
    "LT": 10240,
}
_AGE_RE = re.compile(r"^(\d{3})([DWMY])$")
_OLDEST_AGE = {"Y": 90, "M": 90 * 12, "W": 90 * 52, "D": 90 * 365}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What happened to one attribute: ``path`` like ``(0008,1140)[0](0008,1155)``."""

    path: str
    keyword: str
    action: str


def _is_well_known_uid(value: str) -> bool:
    return value.startswith("1.2.840.10008.") or value in UID_dictionary


def _as_text(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bytes):
        return [value.decode("latin-1")]
    if isinstance(value, str | PersonName):
        return [str(value)]
    try:
        return [str(v) for v in value]
    except TypeError:
        return [str(value)]


@lru_cache(maxsize=4096)
def _keyword(tag: int) -> str:
    return keyword_for_tag(tag)


def _tag_str(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


class Actions:
    """One de-identification run: its state, and the standard actions on one attribute."""

    def __init__(
        self,
        compiled: CompiledProfile,
        keys: Keys,
        offset: int,
        pseudonym: str,
        sop_class: str,
    ) -> None:
        self.c = compiled
        self.keys = keys
        self.offset = offset
        self.pseudonym = pseudonym
        self.scrubber = Scrubber((), (), ())
        self.sop_class = sop_class
        self.uid_map: dict[str, str] = {}
        self.audit: list[AuditEntry] = []
        self.private = private_rules() if compiled.retain_safe_private else {}

    # -- helpers -----------------------------------------------------------------------
    def note(self, path: str, tag: int, action: str, keyword: str | None = None) -> None:
        if keyword is None:
            keyword = _keyword(tag) if not (tag >> 16) & 1 else ""
        self.audit.append(AuditEntry(path, keyword, action))

    def remap(self, value: str) -> str:
        uid = value.strip().rstrip("\x00").strip()
        if not uid or _is_well_known_uid(uid):
            return uid
        new = self.uid_map.get(uid)
        if new is None:
            new = new_uid(self.keys, uid)
            self.uid_map[uid] = new
        return new

    @staticmethod
    def element(ds: Dataset, tag: int) -> DataElement | None:
        try:
            return ds[tag]
        except Exception:  # undecodable value: the caller removes it
            return None

    @staticmethod
    def vr_of(tag: int, raw: Any) -> str:
        entry = DicomDictionary.get(tag)
        if entry is not None:
            vr = entry[0]
            if " or " in vr:  # e.g. "US or SS": the file's VR decides
                return str(getattr(raw, "VR", None) or vr.split(" ")[0])
            return str(vr)
        return str(getattr(raw, "VR", None) or "UN")

    def dataset(self, ds: Dataset, prefix: str, parent: int | None) -> None:
        raise NotImplementedError  # the walker (dispatch.Walker) recurses

    # -- actions -----------------------------------------------------------------------
    def sequence(self, ds: Dataset, tag: int, path: str) -> bool:
        elem = self.element(ds, tag)
        if elem is None or not isinstance(elem.value, Sequence):
            return False
        for index, item in enumerate(elem.value):
            self.dataset(item, f"{path}[{index}]", tag)
        return True

    def keep(self, ds: Dataset, tag: int, vr: str, path: str) -> None:
        if vr == "SQ":
            if not self.sequence(ds, tag, path):
                del ds[tag]
                self.note(path, tag, "removed")
                return
            self.note(path, tag, "kept")
            return
        if vr == "PN":  # names are never kept, whatever the options say
            del ds[tag]
            self.note(path, tag, "removed")
            return
        if vr in TEXT_VRS and vr != "UN":
            self.scrub_text(ds, tag, vr, path, "kept")
            return
        if vr == "AS" and self.c.retain_patient_characteristics:
            self.cap_age(ds, tag, path)
            return
        if vr == "UN":
            raw = ds.get_item(tag)
            value = getattr(raw, "value", b"")
            if isinstance(value, bytes) and self.scrubber.contains(value.decode("latin-1")):
                del ds[tag]
                self.note(path, tag, "removed")
                return
        self.note(path, tag, "kept")

    def scrub_text(self, ds: Dataset, tag: int, vr: str, path: str, verb: str) -> None:
        elem = self.element(ds, tag)
        if elem is None:
            del ds[tag]
            self.note(path, tag, "removed")
            return
        if elem.value is None or elem.value == "":
            self.note(path, tag, verb)
            return
        values = _as_text(elem.value)
        limit = _MAX_LEN.get(vr)
        cleaned = [self.scrubber.clean(v, limit) for v in values]
        if cleaned != values:
            ds[tag] = DataElement(tag, vr, cleaned[0] if len(cleaned) == 1 else cleaned)
            self.note(path, tag, "cleaned")
        else:
            self.note(path, tag, verb)

    def cap_age(self, ds: Dataset, tag: int, path: str) -> None:
        elem = self.element(ds, tag)
        text = str(elem.value or "") if elem is not None else ""
        match = _AGE_RE.match(text.strip())
        if match and int(match.group(1)) >= _OLDEST_AGE[match.group(2)]:
            ds[tag] = DataElement(tag, "AS", "090Y")  # HIPAA: ages over 89 are PHI
            self.note(path, tag, "replaced")
        elif elem is not None and text and not match:
            del ds[tag]
            self.note(path, tag, "removed")
        else:
            self.note(path, tag, "kept")

    def empty(self, ds: Dataset, tag: int, vr: str, path: str) -> None:
        if vr == "SQ":
            ds[tag] = DataElement(tag, "SQ", Sequence())
        else:
            ds[tag] = DataElement(tag, vr, None)
        self.note(path, tag, "emptied")

    def dummy(self, ds: Dataset, tag: int, vr: str, path: str) -> None:
        if vr == "SQ":
            # D on a sequence: keep the structure, every contained attribute gets its own
            # action from the table (names, dates, UIDs are replaced at every depth).
            self.keep(ds, tag, vr, path)
            return
        if vr == "UI":
            self.uids(ds, tag, vr, path)
            return
        value: Any
        if vr == "DA":
            value = DUMMY_DA
        elif vr == "DT":
            value = DUMMY_DT
        elif vr == "TM":
            value = DUMMY_TM
        elif vr == "AS":
            value = "000Y"
        elif vr in ("IS", "DS"):
            value = "0"
        elif vr in ("US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"):
            value = 0
        elif vr in BINARY_VRS:
            value = b"\x00" * 8
        else:
            value = DUMMY_TEXT[: _MAX_LEN.get(vr, 64)]
        ds[tag] = DataElement(tag, vr, value)
        self.note(path, tag, "dummy")

    def uids(self, ds: Dataset, tag: int, vr: str, path: str) -> None:
        if vr == "SQ":  # X/Z/U* resolved to U: keep the items, re-root the UIDs inside
            self.keep(ds, tag, vr, path)
            return
        if self.c.retain_uids:
            self.note(path, tag, "kept")
            return
        elem = self.element(ds, tag)
        if elem is None or vr != "UI":
            del ds[tag]
            self.note(path, tag, "removed")
            return
        values = _as_text(elem.value)
        if not values:
            self.note(path, tag, "kept")
            return
        new = [self.remap(v) for v in values]
        if new != [v.strip().rstrip("\x00") for v in values]:
            ds[tag] = DataElement(tag, "UI", new[0] if len(new) == 1 else new)
            self.note(path, tag, "uid")
        else:
            self.note(path, tag, "kept")

    def clean(self, ds: Dataset, tag: int, vr: str, path: str) -> None:
        if vr == "SQ":
            self.keep(ds, tag, vr, path)
        elif vr in ("DA", "DT"):
            self.shift(ds, tag, vr, path)
        elif vr == "TM":
            self.note(path, tag, "kept")  # whole-day shifts leave times as they were
        elif vr == "UI":
            self.uids(ds, tag, vr, path)
        elif vr == "PN":
            self.dummy(ds, tag, vr, path)
        elif vr in TEXT_VRS and vr != "UN":
            self.scrub_text(ds, tag, vr, path, "kept")
        elif vr == "AS":
            self.cap_age(ds, tag, path)
        else:
            self.keep(ds, tag, vr, path)

    def shift(self, ds: Dataset, tag: int, vr: str, path: str) -> None:
        if self.c.dates == "full":
            self.note(path, tag, "kept")
            return
        if self.c.dates != "modified":
            self.dummy(ds, tag, vr, path)
            return
        elem = self.element(ds, tag)
        if elem is None:
            del ds[tag]
            self.note(path, tag, "removed")
            return
        text = "\\".join(_as_text(elem.value))
        if not text.strip():
            self.note(path, tag, "kept")
            return
        shifted = shift_multi(text, self.offset, vr, keep_zone=False)
        if shifted is None:
            ds[tag] = DataElement(tag, vr, None)
            self.note(path, tag, "emptied")
            return
        parts = shifted.split("\\")
        ds[tag] = DataElement(tag, vr, parts[0] if len(parts) == 1 else parts)
        self.note(path, tag, "shifted")

    # -- graphics (curves 50xx, overlays 60xx) -----------------------------------------
    def graphics(self, ds: Dataset, tag: int, path: str) -> None:
        elem_no = tag & 0xFFFF
        if not self.c.clean_graphics:
            del ds[tag]
            self.note(path, tag, "removed")
            return
        raw = ds.get_item(tag)
        vr = str(getattr(raw, "VR", None) or "")
        if not vr:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                vr = "UN"
        if elem_no in (0x4000, 0x1500, 0x0022, 0x2500) or vr in TEXT_VRS - {"UN"}:
            del ds[tag]  # comments, labels, descriptions
            self.note(path, tag, "removed")
        else:
            self.note(path, tag, "kept")
