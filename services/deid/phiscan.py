"""The residual-PHI scan: does a de-identified instance still carry its own patient's
identifiers anywhere?

De-identification removes and replaces by rule (PS3.15 Annex E); this scan checks the
result the way an attacker would, by looking for the original record's own identifiers in
the whole output — every element at every depth, private and UN elements included, text
inside sequences, binary values read as text — and in the object's key. It runs where the
originals are known (deid, next to quarantine), and a finding names only *where* and
*what kind* (``element path``, ``kind``), never the value, so findings may travel to
curation and to curators.

Identifiers looked for (from the original dataset):

* name components of PN values that name the patient or other people (any case, accents
  folded, at least :data:`MIN_NAME_LETTERS` letters) — kind ``name``;
* PatientID, other patient IDs, AccessionNumber, and other identifying IDs — ``id``;
* dates of birth and study/series/acquisition dates in the written forms people use
  (YYYYMMDD, MM/DD/YYYY, DD.MM.YYYY, YYYY-MM-DD, …) — ``date``, unless the profile
  retains full dates;
* original UIDs (study, series, SOP instance, frame of reference, …) — ``uid``, unless the
  profile retains UIDs;
* institution and station names — ``institution`` / ``station``, unless retained.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date

from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName

#: Name components shorter than this are too common to be evidence ("Li", "Al").
MIN_NAME_LETTERS = 3
#: IDs shorter than this match too much by chance.
MIN_ID_CHARS = 3

_NAME_KEYWORDS = (
    "PatientName",
    "PatientBirthName",
    "PatientMotherBirthName",
    "OtherPatientNames",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "RequestingPhysician",
    "PhysiciansOfRecord",
    "ResponsiblePerson",
)
_ID_KEYWORDS = (
    "PatientID",
    "OtherPatientIDs",
    "AccessionNumber",
    "StudyID",
    "IssuerOfPatientID",
    "MedicalRecordLocator",
    "AdmissionID",
    "PerformedProcedureStepID",
    "RequestedProcedureID",
    "ScheduledProcedureStepID",
    "DeviceSerialNumber",
)
_DATE_KEYWORDS = (
    "PatientBirthDate",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "InstanceCreationDate",
)
_UID_KEYWORDS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
    "MediaStorageSOPInstanceUID",
)


#: Elements naming the equipment's maker, never a person or a place.
_VENDOR_KEYWORDS = ("Manufacturer", "ManufacturerModelName")


@dataclass(frozen=True)
class Finding:
    """An identifier of the original record found in the output: where and of what kind."""

    path: str
    kind: str


@dataclass
class Identifiers:
    """What to look for, taken from the original (quarantined) dataset."""

    names: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)
    dates: set[str] = field(default_factory=set)  # YYYYMMDD
    uids: set[str] = field(default_factory=set)
    institutions: set[str] = field(default_factory=set)
    stations: set[str] = field(default_factory=set)
    #: folded texts that stand in an output by design and are masked before matching:
    #: the vendor's names (an institution called like its scanner's maker identifies no
    #: one); the scan adds the pseudonym and the collection name
    allowed: set[str] = field(default_factory=set)

    def empty(self) -> bool:
        return not (
            self.names or self.ids or self.dates or self.uids or self.institutions or self.stations
        )


def fold(text: str) -> str:
    """Case- and accent-insensitive form: ``Müller`` and ``MULLER`` fold alike."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _values(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None:
        return []
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    out = []
    for item in items:
        if isinstance(item, bytes):
            item = item.decode("latin-1", "replace")
        text = str(item).strip(" \x00")
        if text:
            out.append(text)
    return out


def _name_parts(value: str | PersonName) -> Iterator[str]:
    for part in re.split(r"[\^=\s,.\-'’]+", str(value)):
        letters = sum(c.isalpha() for c in part)
        if letters >= MIN_NAME_LETTERS:
            yield fold(part)


#: The standard elements :func:`identifiers_of` reads by keyword.
_LOOKED_FOR = frozenset(
    (
        *_NAME_KEYWORDS,
        *_ID_KEYWORDS,
        *_DATE_KEYWORDS,
        *_UID_KEYWORDS,
        *_VENDOR_KEYWORDS,
        "InstitutionName",
        "StationName",
    )
)


def _may_identify(ds: Dataset, tag: int) -> bool:
    """Whether the element at ``tag`` can hold an identifier, decided from the data
    dictionary while it is still raw, so the many that cannot (pixel descriptions, numbers,
    codes) are never converted. Private and unknown elements are always read."""
    raw = ds.get_item(tag)
    entry = DicomDictionary.get(tag)
    if entry is None or tag >> 16 & 1:
        return True
    vr = raw.VR if isinstance(raw, RawDataElement) and raw.VR else entry[0]
    return vr in ("SQ", "PN") or "PN" in entry[0] or entry[4] in _LOOKED_FOR


def _walk(ds: Dataset) -> Iterator[DataElement]:
    for tag in list(ds.keys()):
        if not _may_identify(ds, tag):
            continue
        elem = ds[tag]
        if elem.VR == "SQ" and isinstance(elem.value, Sequence):
            for item in elem.value:
                yield from _walk(item)
        else:
            yield elem


def identifiers_of(original: Dataset, retained: Collection[str] = ()) -> Identifiers:
    """The identifiers of ``original`` the output must not carry, given the options the
    profile ``retained`` on purpose (PS3.15 E.3 option names as in
    ``services.deid.engine.OPTIONS``: retain_long_full_dates, retain_uids,
    retain_institution_identity, retain_device_identity)."""
    retain_dates = "retain_long_full_dates" in retained
    retain_uids = "retain_uids" in retained
    retain_institution = "retain_institution_identity" in retained
    retain_device = "retain_device_identity" in retained
    found = Identifiers()
    for elem in _walk(original):
        keyword = elem.keyword
        if elem.VR == "PN" or keyword in _NAME_KEYWORDS:
            for v in _values(elem):
                found.names.update(_name_parts(v))
        elif keyword in _ID_KEYWORDS:
            if keyword == "DeviceSerialNumber" and retain_device:
                continue
            found.ids.update(v for v in _values(elem) if len(v) >= MIN_ID_CHARS)
        elif keyword in _DATE_KEYWORDS and not retain_dates:
            found.dates.update(v for v in _values(elem) if re.fullmatch(r"\d{8}", v))
        elif keyword in _UID_KEYWORDS and not retain_uids:
            found.uids.update(_values(elem))
        elif keyword == "InstitutionName" and not retain_institution:
            found.institutions.update(fold(v) for v in _values(elem) if len(v) >= MIN_ID_CHARS)
        elif keyword == "StationName" and not retain_device:
            found.stations.update(fold(v) for v in _values(elem) if len(v) >= MIN_ID_CHARS)
        elif keyword in _VENDOR_KEYWORDS:
            found.allowed.update(fold(v) for v in _values(elem))
    meta = getattr(original, "file_meta", None)
    if meta is not None and not retain_uids and "MediaStorageSOPInstanceUID" in meta:
        found.uids.update(_values(meta["MediaStorageSOPInstanceUID"]))
    return found


def date_forms(yyyymmdd: str) -> list[str]:
    """The written forms of one date people put in free text."""
    try:
        d = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return [yyyymmdd]
    y, m, dd = f"{d.year:04d}", f"{d.month:02d}", f"{d.day:02d}"
    forms = {
        f"{y}{m}{dd}",
        f"{m}/{dd}/{y}",
        f"{dd}/{m}/{y}",
        f"{dd}.{m}.{y}",
        f"{y}-{m}-{dd}",
        f"{y}/{m}/{dd}",
        f"{y}.{m}.{dd}",
        f"{m}-{dd}-{y}",
        f"{dd}-{m}-{y}",
        f"{d.month}/{d.day}/{y}",
        f"{d.day}.{d.month}.{y}",
    }
    return sorted(forms)


def _alternation(tokens: Iterable[str], edge: str) -> re.Pattern[str] | None:
    """One pattern matching any of ``tokens`` not inside a longer run of ``edge``
    characters (``ANN`` is not in ``ANNEX``; a UID inside a longer UID is another UID).
    Longest first, so a token that starts another never hides it."""
    ordered = sorted(set(tokens), key=len, reverse=True)
    if not ordered:
        return None
    body = "|".join(re.escape(t) for t in ordered)
    return re.compile(f"(?<![{edge}])(?:{body})(?![{edge}])")


def _needles(ids: Identifiers) -> list[tuple[str, re.Pattern[str]]]:
    """One combined pattern per kind: a scan costs a handful of regex searches per value."""
    words = "0-9a-z"
    patterns = {
        "name": _alternation(ids.names, words),
        "id": _alternation((fold(i) for i in ids.ids), words),
        "date": _alternation((f for d in ids.dates for f in date_forms(d)), "0-9"),
        "uid": _alternation(ids.uids, "0-9."),
        "institution": _alternation(ids.institutions, words),
        "station": _alternation(ids.stations, words),
    }
    return [(kind, p) for kind, p in patterns.items() if p is not None]


def _path(prefix: str, elem: DataElement) -> str:
    return f"{prefix}{int(elem.tag):08X}"


def _texts(ds: Dataset, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(element path, folded text) of every value at every depth; binary and UN values
    are read as Latin-1 text, so an identifier hidden in a private blob is still seen."""
    for elem in ds:
        if int(elem.tag) >> 16 == 0x7FE0:
            continue  # pixel data: burned-in text is the OCR check's
        if elem.VR == "SQ" and isinstance(elem.value, Sequence):
            for i, item in enumerate(elem.value):
                yield from _texts(item, f"{_path(prefix, elem)}[{i}].")
            continue
        for v in _values(elem):
            yield _path(prefix, elem), fold(v)


def scan(
    output: Dataset, identifiers: Identifiers, *, key: str = "", allowed: Iterable[str] = ()
) -> list[Finding]:
    """Every place of ``output`` (and of its object ``key``) where one of the original
    record's identifiers still stands, one finding per (path, kind).

    ``allowed`` names texts the output carries by design — the patient's pseudonym and the
    collection's name: an identifier seen only inside one of them (a name component
    ``demo`` inside the pseudonym ``IMARC-Demo-0001``) is not a finding.
    """
    if identifiers.empty():
        return []
    needles = _needles(identifiers)
    masks = sorted({fold(a) for a in allowed if a} | identifiers.allowed, key=len, reverse=True)
    mask = re.compile("|".join(re.escape(m) for m in masks)) if masks else None
    found: dict[tuple[str, str], Finding] = {}
    sources: Iterable[tuple[str, str]] = _texts(output)
    if key:
        sources = [*sources, ("object key", fold(key))]
    meta = getattr(output, "file_meta", None)
    if meta is not None:
        sources = [*sources, *((f"meta.{p}", t) for p, t in _texts(meta))]
    for path, text in sources:
        if mask is not None:
            text = mask.sub(" ", text)
        for kind, pattern in needles:
            if (path, kind) not in found and pattern.search(text):
                found[(path, kind)] = Finding(path, kind)
    return sorted(found.values(), key=lambda f: (f.path, f.kind))
