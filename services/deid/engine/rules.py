"""A profile compiled to a tag -> action table (PS3.15 Table E.1-1 with the profile's options).

Compiled once per profile digest and cached, so de-identifying an instance is dictionary
lookups, never a scan of the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from threading import Lock

from pydicom.datadict import DicomDictionary, tag_for_keyword

from .iod import ALLOWED_TEXT_KEYWORDS
from .profile import Profile
from .tables import annex_e_rows

#: VRs that can carry free text (PS3.15 E.1.1: the de-identifier owns unlisted text too).
TEXT_VRS = frozenset({"PN", "LO", "LT", "SH", "ST", "UT", "UC", "UN", "AE", "UR"})
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})

#: Engine actions beyond Table E.1-1a: P = the patient pseudonym, G = a UI attribute outside
#: the table (re-rooted unless a class/scheme UID, a well-known UID, or Retain UIDs).
PSEUDONYM = "P"
GENERIC_UID = "G"

#: UI attributes whose values name classes, syntaxes or coding schemes, not instances.
CLASS_UID_KEYWORDS = frozenset(
    [
        "SOPClassUID",
        "ReferencedSOPClassUID",
        "AffectedSOPClassUID",
        "RequestedSOPClassUID",
        "MediaStorageSOPClassUID",
        "TransferSyntaxUID",
        "ReferencedSOPClassUIDInFile",
        "ReferencedTransferSyntaxUIDInFile",
        "ReferencedRelatedGeneralSOPClassUIDInFile",
        "RelatedGeneralSOPClassUID",
        "OriginalSpecializedSOPClassUID",
        "SOPClassesInStudy",
        "CodingSchemeUID",
        "ContextUID",
        "MappingResourceUID",
        "ImplementationClassUID",
        "ContextGroupExtensionCreatorUID",
        "RelatedGeneralSOPClassUID",
        "PrivateInformationCreatorUID",
        "EncryptedContentTransferSyntaxUID",
        "ReferencedColorPaletteInstanceUID",
    ]
)

# Attributes Table E.1-1 (2024b) does not list but the engine must still decide.
_EXTRA_ROWS: dict[int, tuple[str, dict[str, str]]] = {
    0x0040A160: ("D", {"clean_structured_content": "C"}),  # Text Value (SR TEXT items)
    0x04000500: ("X", {}),  # Encrypted Attributes Sequence: would carry the originals
    0x4FFE0001: ("X", {}),  # MAC Parameters Sequence: invalid after any change
    0x00120062: ("X", {}),  # Patient Identity Removed: rewritten by the engine
    0x00120063: ("X", {}),  # De-identification Method: rewritten
    0x00120064: ("X", {}),  # De-identification Method Code Sequence: rewritten
    0x00280303: ("X", {}),  # Longitudinal Temporal Information Modified: rewritten
}

#: Timezone Offset From UTC (0008,0201): Table E.1-1 says C under Modified Dates, but no
#: cleaned offset hides where the patient was, so shifted dates drop it (and DT offsets).
TIMEZONE_OFFSET = 0x00080201


@cache
def reference_sequences() -> frozenset[int]:
    """Sequences of Table E.1-1 whose Retain UIDs column keeps them: their content is UIDs."""
    return frozenset(
        row.tag
        for row in annex_e_rows()
        if row.options.get("retain_uids") == "K" and DicomDictionary.get(row.tag, ("",))[0] == "SQ"
    )


@dataclass(frozen=True, slots=True)
class CompiledProfile:
    """Everything the walker needs, resolved from a Profile."""

    actions: dict[int, str]
    allowed_text: frozenset[int]
    class_uid_tags: frozenset[int]
    dates: str  # "modified" | "full" | "none"
    retain_safe_private: bool
    retain_uids: bool
    retain_patient_characteristics: bool
    clean_graphics: bool
    clean_descriptors: bool
    clean_structured_content: bool

    def generic_action(self, vr: str) -> str:
        """Action for a standard attribute outside Table E.1-1, by VR."""
        if vr == "SQ":
            return "K"
        if vr in TEXT_VRS:
            return "X"
        if vr in ("DA", "DT"):
            return {"modified": "C", "full": "K"}.get(self.dates, "X")
        if vr == "TM":
            return "X" if self.dates == "none" else "K"
        if vr == "UI":
            return GENERIC_UID
        return "K"


def _option_action(basic: str, per_option: dict[str, str], options: frozenset[str]) -> str:
    chosen = [act for opt, act in per_option.items() if opt in options]
    if "C" in chosen:  # clean beats keep: a shifted date is safer than a kept one
        return "C"
    if "K" in chosen:
        return "K"
    return basic


def _compile(profile: Profile) -> CompiledProfile:
    options = profile.options
    if "retain_long_modified_dates" in options:
        dates = "modified"
    elif "retain_long_full_dates" in options:
        dates = "full"
    else:
        dates = "none"
    actions: dict[int, str] = {}
    for row in annex_e_rows():
        actions[row.tag] = _option_action(row.basic, row.options, options)
    for tag, (basic, per_option) in _EXTRA_ROWS.items():
        actions[tag] = _option_action(basic, per_option, options)
    if dates != "full":
        actions[TIMEZONE_OFFSET] = "X"
    for tag in reference_sequences():
        # Referenced Image/Study/Patient/PPS and Source Image Sequence: their items are
        # references, kept and re-rooted (U), never removed (X/Z would break them).
        actions[tag] = "K" if "retain_uids" in options else "U"
    actions[0x00100010] = PSEUDONYM  # Patient's Name
    actions[0x00100020] = PSEUDONYM  # Patient ID
    allowed: set[int] = set()
    for keyword in ALLOWED_TEXT_KEYWORDS | set(profile.keep_tags):
        found = tag_for_keyword(keyword)
        if found is None:
            if keyword in profile.keep_tags:
                raise ValueError(f"keep_tags names {keyword!r}, which is not a DICOM keyword")
            continue
        allowed.add(found)
    for keyword in profile.keep_tags:
        # An explicit allow-list entry overrides a removal for the profile's own attributes.
        found = tag_for_keyword(keyword)
        if found is not None and actions.get(found) in ("X", "Z", "D", "X/Z", "X/D", "X/Z/D"):
            vr = DicomDictionary.get(found, ("UN",))[0]
            if vr != "PN":
                actions[found] = "C"
    class_tags = frozenset(
        t for t in (tag_for_keyword(k) for k in CLASS_UID_KEYWORDS) if t is not None
    )
    return CompiledProfile(
        actions=actions,
        allowed_text=frozenset(allowed),
        class_uid_tags=class_tags,
        dates=dates,
        retain_safe_private="retain_safe_private" in options,
        retain_uids="retain_uids" in options,
        retain_patient_characteristics="retain_patient_characteristics" in options,
        clean_graphics="clean_graphics" in options,
        clean_descriptors="clean_descriptors" in options,
        clean_structured_content="clean_structured_content" in options,
    )


_CACHE: dict[str, CompiledProfile] = {}
_CACHE_LOCK = Lock()
_CACHE_MAX = 64


def compile_profile(profile: Profile) -> CompiledProfile:
    """The compiled form of ``profile``, cached by its digest."""
    key = profile.digest()
    compiled = _CACHE.get(key)
    if compiled is None:
        compiled = _compile(profile)
        with _CACHE_LOCK:
            if len(_CACHE) >= _CACHE_MAX:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = compiled
    return compiled
