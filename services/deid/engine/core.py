"""De-identify one DICOM Part 10 instance (PS3.15 Annex E), as a pure function.

``deidentify`` takes the raw bytes and everything it needs (keys, profile, pseudonym, day
offset) and returns the de-identified bytes or a hold reason, an audit of what it did (paths
and actions, never values), and the UID map. It does no I/O besides reading the packaged
tables, so the service can run it in a process pool.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydicom import config as pydicom_config
from pydicom.datadict import DicomDictionary, dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import dcmread
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, UID_dictionary
from pydicom.valuerep import PersonName

from services.common.dicom_json import header_json

from . import pixels
from .dates import DUMMY_DA, DUMMY_DT, DUMMY_TM, shift_multi
from .iod import attribute_type, resolve
from .keys import Keys, new_uid
from .profile import Profile
from .rules import BINARY_VRS, GENERIC_UID, PSEUDONYM, TEXT_VRS, CompiledProfile, compile_profile
from .scrub import Scrubber
from .tables import TABLE_EDITION, cid_7050, normalise_creator, private_rules

ENGINE_VERSION = "1.0"
IMPLEMENTATION_VERSION_NAME = "IMARC_DEID_1"
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
_PRIVATE_TEXT_VRS = TEXT_VRS | {"DA", "DT", "UI", "CS"}
_AGE_RE = re.compile(r"^(\d{3})([DWMY])$")
_OLDEST_AGE = {"Y": 90, "M": 90 * 12, "W": 90 * 52, "D": 90 * 365}


class DeidentificationError(ValueError):
    """The input cannot be de-identified (not DICOM, or an invalid request)."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What happened to one attribute: ``path`` like ``(0008,1140)[0](0008,1155)``."""

    path: str
    keyword: str
    action: str


#: ``Result.hold_kind`` values: what a held instance waits for. A curator's release after
#: review (``Request.release_pixel_hold``) lets either through.
HOLD_BURNED_IN_PHI = "burned_in_phi"
HOLD_RECOGNIZABLE_FEATURES = "recognizable_features"


@dataclass
class Request:
    """One instance to de-identify. ``release_pixel_hold``: a curator has reviewed the
    image, so neither the burned-in screen nor the recognizable-features hold applies."""

    raw: bytes
    collection: str
    patient_pseudonym: str
    keys: Keys
    profile: Profile
    date_offset_days: int
    release_pixel_hold: bool = False


@dataclass
class Result:
    data: bytes | None
    held_reason: str | None
    audit: list[AuditEntry] = field(default_factory=list)
    uid_map: dict[str, str] = field(default_factory=dict)
    original: dict[str, str] = field(default_factory=dict)
    deidentified: dict[str, Any] = field(default_factory=dict)
    header_json: dict[str, Any] = field(default_factory=dict)
    hold_kind: str | None = None


def read_patient_id(raw: bytes) -> str:
    """PatientID (0010,0020) of a Part 10 file, reading the header only."""
    try:
        ds = dcmread(io.BytesIO(raw), stop_before_pixels=True, specific_tags=["PatientID"])
    except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
        raise DeidentificationError(f"not a readable DICOM Part 10 file: {exc}") from exc
    value = ds.get("PatientID", "")
    return str(value or "").strip()


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


class _Walker:
    """One de-identification run over one dataset."""

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

    # -- datasets ----------------------------------------------------------------------
    def dataset(self, ds: Dataset, prefix: str, parent: int | None) -> None:
        blocks_kept: set[tuple[int, int]] = set()
        creators: list[int] = []
        creator_names: dict[int, str] = {}
        for tag in list(ds.keys()):  # BaseTag: pydicom's own lookups skip Tag() conversion
            group = tag >> 16
            elem_no = tag & 0xFFFF
            if group & 1:
                if 0x0010 <= elem_no <= 0x00FF:
                    creators.append(tag)
                else:
                    self.private_element(ds, tag, prefix, blocks_kept, creator_names)
                continue
            path = prefix + _tag_str(tag)
            if elem_no == 0 or group in (0x0000, 0x0002):
                del ds[tag]  # group lengths, command and file meta elements
                self.note(path, tag, "removed")
                continue
            if (0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E) and not group & 1:
                self.graphics(ds, tag, path)
                continue
            raw = ds.get_item(tag)
            vr = self.vr_of(tag, raw)
            action = self.c.actions.get(tag)
            if action is None:
                action = self.c.generic_action(vr)
                if action == "X" and tag in self.c.allowed_text:
                    action = "K"
            self.apply(ds, tag, vr, action, path, parent)
        for creator_tag in creators:
            group, block = creator_tag >> 16, creator_tag & 0xFF
            if (group, block) not in blocks_kept:
                del ds[creator_tag]
                self.note(prefix + _tag_str(creator_tag), creator_tag, "removed", "PrivateCreator")

    @staticmethod
    def vr_of(tag: int, raw: Any) -> str:
        entry = DicomDictionary.get(tag)
        if entry is not None:
            vr = entry[0]
            if " or " in vr:  # e.g. "US or SS": the file's VR decides
                return str(getattr(raw, "VR", None) or vr.split(" ")[0])
            return str(vr)
        return str(getattr(raw, "VR", None) or "UN")

    def apply(
        self, ds: Dataset, tag: int, vr: str, action: str, path: str, parent: int | None
    ) -> None:
        if "/" in action:
            action = resolve(action, attribute_type(self.sop_class, parent, tag))
        if action == "X":
            del ds[tag]
            self.note(path, tag, "removed")
        elif action == "K":
            self.keep(ds, tag, vr, path)
        elif action == "Z":
            self.empty(ds, tag, vr, path)
        elif action == "D":
            self.dummy(ds, tag, vr, path)
        elif action == "U":
            self.uids(ds, tag, vr, path)
        elif action == "C":
            self.clean(ds, tag, vr, path)
        elif action == PSEUDONYM:
            if parent is None:
                ds[tag] = DataElement(tag, vr, self.pseudonym)
                self.note(path, tag, "replaced")
            else:
                # A nested patient name/ID may be another patient's: never keep, never guess.
                self.apply(ds, tag, vr, "Z/D" if tag == 0x00100020 else "Z", path, parent)
        elif action == GENERIC_UID:
            if self.c.retain_uids or tag in self.c.class_uid_tags:
                self.note(path, tag, "kept")
            else:
                self.uids(ds, tag, vr, path)
        else:  # pragma: no cover - actions are validated at load
            raise AssertionError(f"unknown action {action}")

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

    # -- private elements --------------------------------------------------------------
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


#: IDs (beyond every PN, DA, DT and UI value) that Clean Descriptors removes from text.
_ID_KEYWORDS = (
    "PatientID",
    "OtherPatientIDs",
    "AccessionNumber",
    "MedicalRecordLocator",
    "AdmissionID",
    "ClinicalTrialSubjectID",
    "PatientTelephoneNumbers",
)
_ID_TAGS = frozenset(t for t in (tag_for_keyword(k) for k in _ID_KEYWORDS) if t is not None)
#: Sequences whose items' identifiers are the record's own too (one level down).
_IDENTIFYING_SEQUENCES = frozenset(
    t
    for t in (
        tag_for_keyword(k)
        for k in (
            "OtherPatientIDsSequence",
            "ReferencedImageSequence",
            "SourceImageSequence",
            "ReferencedStudySequence",
            "ReferencedSeriesSequence",
            "ReferencedPatientSequence",
            "ReferencedPerformedProcedureStepSequence",
        )
    )
    if t is not None
)


class _Identifiers:
    """The record's own names, IDs, dates and UIDs, which kept text must not repeat."""

    __slots__ = ("dates", "ids", "names", "uids")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.ids: list[str] = []
        self.dates: list[str] = []
        self.uids: list[str] = []

    def collect(self, ds: Dataset, depth: int = 0) -> _Identifiers:
        for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset yields elements
            if tag >> 16 & 1 or tag >> 16 in (0x0002, 0x7FE0):
                continue
            vr = _Walker.vr_of(tag, ds.get_item(tag))
            if vr == "SQ":
                if depth == 0 and tag in _IDENTIFYING_SEQUENCES:
                    elem = _Walker.element(ds, tag)
                    for item in elem.value if elem is not None else ():
                        self.collect(item, depth + 1)
                continue
            if vr not in ("PN", "DA", "DT", "UI") and tag not in _ID_TAGS:
                continue
            elem = _Walker.element(ds, tag)
            values = _as_text(None if elem is None else elem.value)
            if vr == "PN":
                self.names += values
            elif vr == "DA":
                self.dates += [v for part in values for v in part.split("\\")]
            elif vr == "DT":
                self.dates += [v[:8] for part in values for v in part.split("\\")]
            elif vr == "UI":
                self.uids += [v.strip() for v in values if not _is_well_known_uid(v.strip())]
            else:
                self.ids += values
        return self


def _original(ds: Dataset) -> dict[str, str]:
    return {
        kw: str(ds.get(kw, "") or "").strip()
        for kw in (
            "PatientID",
            "PatientName",
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "SOPInstanceUID",
        )
    }


def deidentify(req: Request) -> Result:
    """De-identify one Part 10 instance under ``req.profile``; see the module docstring."""
    pseudonym = req.patient_pseudonym.strip()
    if not pseudonym or len(pseudonym) > 64 or "\\" in pseudonym:
        raise DeidentificationError("the patient pseudonym must be 1-64 characters, no '\\'")
    compiled = compile_profile(req.profile)
    if compiled.dates == "modified" and req.date_offset_days == 0:
        raise DeidentificationError("modified dates need a non-zero date offset")
    try:
        ds = dcmread(io.BytesIO(req.raw))
    except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
        raise DeidentificationError(f"not a readable DICOM Part 10 file: {exc}") from exc
    meta = ds.file_meta
    transfer_syntax = meta.get("TransferSyntaxUID")
    if not transfer_syntax or "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
        raise DeidentificationError(
            "the file lacks TransferSyntaxUID, SOPClassUID or SOPInstanceUID; "
            "it cannot be de-identified as a composite instance"
        )
    original = _original(ds)

    face = pixels.recognizable_features(ds, req.profile)
    if face is not None and not req.release_pixel_hold:
        return _held(ds, req, compiled, pseudonym, HOLD_RECOGNIZABLE_FEATURES, face, original)
    hold = pixels.screen(ds, req.profile)
    blank_rule = pixels.matching_blank_rule(ds, req.profile) if pixels.has_pixels(ds) else None
    blanked = False
    if blank_rule is not None:
        try:
            pixels.blank(ds, blank_rule.rectangles)
            blanked = True
            hold = []
        except pixels.BlankingError as exc:
            hold.append(f"blank rule matched but {exc}")
    if hold and not req.release_pixel_hold:
        reason = "possible burned-in PHI: " + "; ".join(hold)
        return _held(ds, req, compiled, pseudonym, HOLD_BURNED_IN_PHI, reason, original)

    found = _Identifiers().collect(ds)
    sop_class = str(ds.SOPClassUID).strip()
    walker = _Walker(compiled, req.keys, req.date_offset_days, pseudonym, sop_class)
    walker.scrubber = Scrubber(
        found.names,
        found.ids,
        found.dates,
        () if compiled.retain_uids else found.uids,
        walker.remap,
    )
    with pydicom_config.disable_value_validation():
        walker.dataset(ds, "", None)
        # Type 2 identity attributes stay present (PS3.3 C.7.1.1) under their pseudonym.
        for kw in ("PatientName", "PatientID"):
            if kw not in ds:
                setattr(ds, kw, pseudonym)
        _write_method(ds, req.profile, compiled, blanked)
        ds.file_meta = _file_meta(ds, str(transfer_syntax))
    ds.preamble = b"\x00" * 128
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return Result(
        data=buf.getvalue(),
        held_reason=None,
        audit=walker.audit,
        uid_map=walker.uid_map,
        original=original,
        deidentified={
            "PatientID": pseudonym,
            "StudyInstanceUID": str(ds.get("StudyInstanceUID", "")),
            "SeriesInstanceUID": str(ds.get("SeriesInstanceUID", "")),
            "SOPInstanceUID": str(ds.SOPInstanceUID),
            "SOPClassUID": sop_class,
            "Modality": str(ds.get("Modality", "")),
            "InstanceNumber": _int_or_none(ds.get("InstanceNumber")),
        },
        header_json=header_json(ds),
    )


def _held(
    ds: Dataset,
    req: Request,
    compiled: CompiledProfile,
    pseudonym: str,
    kind: str,
    reason: str,
    original: dict[str, str],
) -> Result:
    """A held instance keeps its place: the UIDs it will get when released (the same keyed
    mapping every reference to it already uses)."""
    place: dict[str, Any] = {"PatientID": pseudonym}
    uid_map: dict[str, str] = {}
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        old = str(ds.get(keyword, "") or "").strip()
        new = old if compiled.retain_uids or not old else new_uid(req.keys, old)
        place[keyword] = new
        if new != old:
            uid_map[old] = new
    place["SOPClassUID"] = str(ds.SOPClassUID).strip()
    place["Modality"] = str(ds.get("Modality", "") or "")
    return Result(
        data=None,
        held_reason=reason,
        hold_kind=kind,
        original=original,
        deidentified=place,
        uid_map=uid_map,
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _write_method(ds: Dataset, profile: Profile, compiled: CompiledProfile, blanked: bool) -> None:
    """PS3.15 E.1.1: Patient Identity Removed, De-identification Method and its codes."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [
        f"imarc deid {ENGINE_VERSION}",
        f"PS3.15 Table E.1-1 {TABLE_EDITION}",
        # The 64-character digest is not last: padding would make it 65 characters long.
        profile.digest(),
        f"profile v{profile.version}",
    ]
    codes = profile.method_codes()
    if blanked:
        codes = sorted({*codes, "113101"})
    meanings = cid_7050()
    items = []
    for code in codes:
        item = Dataset()
        item.CodeValue = code
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meanings[code]
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = {
        "modified": "MODIFIED",
        "full": "UNMODIFIED",
    }.get(compiled.dates, "REMOVED")
    if blanked:
        ds.BurnedInAnnotation = "NO"


def _file_meta(ds: Dataset, transfer_syntax: str) -> FileMetaDataset:
    """File meta rebuilt from the dataset (PS3.10 7.1); nothing of the original is carried."""
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta
