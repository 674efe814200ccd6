"""De-identify one DICOM Part 10 instance (PS3.15 Annex E), as a pure function.

``deidentify`` takes the raw bytes and everything it needs (keys, profile, pseudonym, day
offset) and returns the de-identified bytes or a hold reason, an audit of what it did (paths
and actions, never values), and the UID map. It does no I/O besides reading the packaged
tables, so the service can run it in a process pool.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from pydicom import config as pydicom_config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import dcmread
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from services.common.dicom_json import header_json

from . import pixels
from .actions import AuditEntry
from .dispatch import Walker
from .identifiers import Identifiers
from .keys import Keys, new_uid
from .profile import Profile
from .rules import CompiledProfile, compile_profile
from .scrub import Scrubber
from .tables import TABLE_EDITION, cid_7050

__all__ = [
    "HOLD_BURNED_IN_PHI",
    "HOLD_RECOGNIZABLE_FEATURES",
    "AuditEntry",
    "DeidentificationError",
    "Request",
    "Result",
    "deidentify",
    "read_patient_id",
]

ENGINE_VERSION = "1.0"
IMPLEMENTATION_VERSION_NAME = "IMARC_DEID_1"


class DeidentificationError(ValueError):
    """The input cannot be de-identified (not DICOM, or an invalid request)."""


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

    found = Identifiers().collect(ds)
    sop_class = str(ds.SOPClassUID).strip()
    walker = Walker(compiled, req.keys, req.date_offset_days, pseudonym, sop_class)
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
