"""Rules of the deid service around the engine: pseudonyms, ID maps, profiles, holds.

Pure functions over strings, dicts and engine profiles; no I/O. The engine
(``services.deid.engine``) applies PS3.15 Annex E to one instance; this module decides
what the service feeds it and how its outcome is named to users.
"""

from __future__ import annotations

import csv
import functools
import hmac
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.common.app import DomainError
from services.deid.engine import (
    OPTIONS,
    AuditEntry,
    DeidentificationError,
    Keys,
    Profile,
    default_profile,
)

#: Hold reasons a user can meet; each says what to do next.
NO_ID_MAP_ENTRY = (
    "no ID map entry for this patient; upload the collection's ID map "
    "(imarc deid idmap …) and release it"
)
CHECKSUM_MISMATCH = (
    "the quarantined file does not match the SHA-256 recorded when it was received; "
    "submit the file again"
)
QUARANTINE_MISSING = "the quarantined file is missing; submit the file again"
BURNED_IN_PHI = "possible burned-in PHI"
STUDY_OF_TWO_PATIENTS = (
    "this study already holds instances of another patient of this collection (a misfiled "
    "instance?); check the file's PatientID, IssuerOfPatientID and StudyInstanceUID with the "
    "submitter and submit it corrected"
)
#: How a hold for recognisable features begins (the engine's decision, e.g. a face photo).
RECOGNIZABLE_FEATURES = "recognizable visual features"

#: Profile fields a manager may change (``version`` is assigned, never given).
PROFILE_FIELDS = (
    "options",
    "date_shift_scope",
    "require_id_map",
    "pixel_rules",
    "blank_rectangles",
    "keep_tags",
    "defacing_modalities",
)


def id_map_value_taken(value: str) -> str:
    """The hold reason when the ID map gives a patient a pseudonym another patient has."""
    return (
        f"the ID map gives this patient {value!r}, which another patient already has; "
        "correct the ID map and release it"
    )


class IdMapError(DomainError, ValueError):
    """An uploaded ID map cannot be loaded; the message names the line and the fix."""


class ProfileError(DomainError, ValueError):
    """A profile change is invalid; the message says which value and what is allowed."""


@dataclass(frozen=True)
class IdMapRow:
    line: int
    id_old: str
    id_new: str


def generated_pseudonym(collection: str, seq: int) -> str:
    """``<collection>-0001``, ``-0002``…: TCIA's convention for generated patient IDs.

    The number is allocated per collection in the order patients first arrive; it says
    nothing about the original identifier.
    """
    if seq < 1:
        raise ValueError("pseudonym numbers start at 1")
    return f"{collection}-{seq:04d}"


def pseudonym_problem(value: str) -> str | None:
    """Why ``value`` cannot be a PatientID (0010,0020), or None if it can.

    PatientID is LO (PS3.5 6.2): at most 64 characters, no backslash (the value
    separator) and no control characters. PatientName (PN) receives the same value, whose
    components are separated by ``^`` and ``=``, so those are refused too.
    """
    if not value:
        return "is empty"
    if len(value) > 64:
        return "is longer than 64 characters"
    if any(c in value for c in "\\^="):
        return "contains \\, ^ or ="
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains a control character"
    return None


def parse_id_map(text: str) -> list[IdMapRow]:
    """Parse an ``id_old,id_new`` CSV (header required) into rows with their line numbers.

    Values are stripped (DICOM pads LO values with spaces, PS3.5 6.2). An ``id_old`` given
    twice with different ``id_new`` values, or two patients given the same ``id_new``, is
    refused: either would make the mapping ambiguous. Identical repeated rows are allowed.
    """
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise IdMapError(
            "the ID map is empty; send a CSV whose first line is id_old,id_new"
        ) from None
    except csv.Error as e:
        raise IdMapError(f"line 1: not valid CSV ({e})") from e
    if [h.strip().lower() for h in header] != ["id_old", "id_new"]:
        raise IdMapError("line 1: the header must be exactly id_old,id_new")
    rows: list[IdMapRow] = []
    by_old: dict[str, IdMapRow] = {}
    by_new: dict[str, IdMapRow] = {}
    try:
        for record in reader:
            line = reader.line_num
            if not record or all(not v.strip() for v in record):
                continue
            if len(record) != 2:
                raise IdMapError(
                    f"line {line}: expected 2 values (id_old,id_new), found {len(record)}"
                )
            old, new = record[0].strip(), record[1].strip()
            if not old:
                raise IdMapError(f"line {line}: id_old is empty")
            problem = pseudonym_problem(new)
            if problem:
                raise IdMapError(f"line {line}: id_new {problem}")
            seen = by_old.get(old)
            if seen is not None:
                if seen.id_new != new:
                    raise IdMapError(
                        f"line {line}: id_old on line {seen.line} appears again with a "
                        "different id_new; keep one mapping per patient"
                    )
                continue
            other = by_new.get(new)
            if other is not None:
                raise IdMapError(
                    f"line {line}: id_new {new!r} is already given to the patient on line "
                    f"{other.line}; each patient needs their own id_new"
                )
            row = IdMapRow(line, old, new)
            by_old[old] = by_new[new] = row
            rows.append(row)
    except csv.Error as e:
        raise IdMapError(f"line {reader.line_num}: not valid CSV ({e})") from e
    if not rows:
        raise IdMapError("the ID map has a header but no rows")
    return rows


def initial_profile(require_id_map: bool) -> Profile:
    """A new collection's profile: the engine's default (TCIA practice, issue 3) with the
    collection's ``require_id_map`` setting."""
    base = default_profile().to_dict()
    base.update(version=1, require_id_map=require_id_map)
    return Profile.from_dict(base)


def _content(profile: Profile) -> dict[str, Any]:
    out = profile.to_dict()
    out.pop("version", None)
    return out


def updated_profile(current: Profile, changes: Mapping[str, Any]) -> Profile | None:
    """``current`` with ``changes`` applied, as the next version; None if nothing changes.

    Raises ProfileError naming the valid options when an option name is unknown, and
    relays the engine's own validation (exclusive options, bad rectangles) as one sentence.
    """
    unknown_fields = set(changes) - set(PROFILE_FIELDS)
    if unknown_fields:
        raise ProfileError(
            f"unknown profile field(s) {', '.join(sorted(unknown_fields))}; "
            f"valid fields: {', '.join(PROFILE_FIELDS)}"
        )
    if "options" in changes:
        unknown = sorted({str(o) for o in changes["options"]} - OPTIONS)
        if unknown:
            raise ProfileError(
                f"unknown option(s) {', '.join(unknown)}; valid options: "
                f"{', '.join(sorted(OPTIONS))}"
            )
    merged = current.to_dict()
    merged.update({k: v for k, v in changes.items() if v is not None})
    merged["version"] = current.version + 1
    try:
        candidate = Profile.from_dict(merged)
    except (ValueError, TypeError, KeyError) as e:
        raise ProfileError(f"invalid profile: {e}") from e
    if _content(candidate) == _content(current):
        return None
    return candidate


def with_require_id_map(current: Profile, require: bool) -> Profile | None:
    """The next version with ``require_id_map`` set, or None when it already is."""
    return updated_profile(current, {"require_id_map": require})


@functools.lru_cache(maxsize=1024)
def collection_keys(keys: Keys, collection: str) -> Keys:
    """Each collection re-roots UIDs under its own derived key, so the same file submitted
    to two collections yields two distinct sets of UIDs (no cross-collection linkage)."""
    derived = hmac.new(keys.secret, b"imarc-uid-collection\x00" + collection.encode(), "sha256")
    return Keys(derived.digest(), keys.uid_root)


def curation_key(collection: str, deidentified: Mapping[str, Any]) -> str:
    """``<collection>/<Study>/<Series>/<SOP>.dcm`` from the de-identified UIDs (shared
    contract): the key is stable for an instance, so a re-sent instance replaces it."""
    parts = [
        str(deidentified.get(k) or "").strip()
        for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    ]
    if not all(parts):
        raise ValueError("the de-identified instance lacks a Study, Series or SOP Instance UID")
    return f"{collection}/{parts[0]}/{parts[1]}/{parts[2]}.dcm"


def audit_rows(entries: Iterable[AuditEntry]) -> list[dict[str, str]]:
    """The per-instance audit as stored: attribute paths, keywords and actions — never
    values, so the audit itself carries no PHI (issue 3, Audit)."""
    return [{"path": e.path, "keyword": e.keyword, "action": e.action} for e in entries]


def recognizable_features_reason(engine_reason: str) -> str:
    """The hold reason for an instance the engine held because it shows recognisable
    features (RecognizableVisualFeatures = YES and no defacing step for it)."""
    if engine_reason.lower().startswith(RECOGNIZABLE_FEATURES):
        return engine_reason
    return (
        f"{RECOGNIZABLE_FEATURES}: the image could identify the patient ({engine_reason}); "
        "a curator should look at it and release it only if nothing identifies the patient"
    )


def reason_kind(reason: str) -> str:
    """A short, fixed code for a hold reason (a metric label must not vary per file)."""
    if reason.startswith(BURNED_IN_PHI):
        return "burned_in_phi"
    if reason.lower().startswith(RECOGNIZABLE_FEATURES):
        return "recognizable_features"
    if reason == STUDY_OF_TWO_PATIENTS:
        return "study_two_patients"
    if reason == NO_ID_MAP_ENTRY:
        return "no_id_map_entry"
    if reason in (CHECKSUM_MISMATCH, QUARANTINE_MISSING):
        return "quarantine_object"
    if reason.startswith("not readable"):
        return "unreadable"
    return "deid_failed"


def releases_pixel_hold(reason: str) -> bool:
    """Whether a curator's release waives the pixel screen: only for a pixel hold, which
    is what the curator reviewed (burned-in text, recognisable features); other holds are
    simply tried again."""
    return reason_kind(reason) in ("burned_in_phi", "recognizable_features")


def patient_key(patient_id: str, issuer: str) -> str:
    """What a patient's date offset is derived from: the PatientID, qualified by its
    issuer when the file names one (the same ID from two issuers is two people)."""
    return f"{patient_id}\x00{issuer}" if issuer else patient_id


def failure_reason(error: Exception) -> str:
    """The hold reason for an instance the engine could not de-identify.

    Only the engine's own refusals (DeidentificationError) are quoted: they describe the
    file's structure. Anything else is named by its type alone, since an unexpected error's
    text could echo a header value, and hold reasons travel to the curation side.
    """
    if isinstance(error, DeidentificationError):
        text = str(error).strip()
        if text.startswith("not a readable DICOM"):
            return f"not readable as DICOM ({text}); submit a valid Part 10 file"
        return f"de-identification failed: {text}; a curator should inspect the file"
    return (
        f"de-identification failed unexpectedly ({type(error).__name__}); "
        "a curator should inspect the file and report it"
    )
