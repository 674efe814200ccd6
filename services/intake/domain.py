"""Intake rules: what a submitted file must be to enter quarantine, and what it is called there.

Pure functions over bytes and pydicom Datasets; no I/O. The API turns request bodies into
files, the handlers write objects and rows; everything they decide comes from here.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian

from services.common.bounds import LimitExceeded, Limits, inflate
from services.common.dicom_walk import PIXEL_TAGS, Truncated, Walker
from services.common.events import Licence
from services.intake.values import first_invalid

# -- collections ---------------------------------------------------------------------------


#: The built-in licences, by id: what intake accepts on its own, without an auth service.
#: TCIA publishes most collections under Creative Commons licences and some under its own
#: restricted licences; the name and URL travel with every collection.updated event and end
#: up in each download's LICENSE file. Licences the auth service announces (licence.updated)
#: come first: see ``resolve_licence``.
LICENCES: dict[str, Licence] = {
    lic.id: lic
    for lic in (
        Licence(
            id="CC-BY-4.0", name="CC BY 4.0", url="https://creativecommons.org/licenses/by/4.0/"
        ),
        Licence(
            id="CC-BY-3.0", name="CC BY 3.0", url="https://creativecommons.org/licenses/by/3.0/"
        ),
        Licence(
            id="CC-BY-NC-4.0",
            name="CC BY-NC 4.0",
            url="https://creativecommons.org/licenses/by-nc/4.0/",
        ),
        Licence(
            id="CC-BY-NC-3.0",
            name="CC BY-NC 3.0",
            url="https://creativecommons.org/licenses/by-nc/3.0/",
        ),
        Licence(
            id="CC0-1.0", name="CC0 1.0", url="https://creativecommons.org/publicdomain/zero/1.0/"
        ),
        Licence(
            id="TCIA-Restricted",
            name="TCIA Restricted License",
            url="https://www.cancerimagingarchive.net/data-usage-policies-and-restrictions/",
        ),
        Licence(
            id="NCTN-Data-Archive",
            name="NCTN Data Archive License",
            url="https://nctn-data-archive.nci.nih.gov/",
        ),
    )
}


class UnknownLicence(ValueError):
    """A licence id that is not in the catalogue; the message lists the known ones."""


def known_licences(announced: Mapping[str, Licence | None] | None = None) -> list[str]:
    """The ids a new collection may name: the built-ins (in their order) that the auth
    service has not deleted, then the other licences it announced, sorted."""
    announced = announced or {}
    builtin = [i for i in LICENCES if announced.get(i, LICENCES[i]) is not None]
    extra = sorted(i for i, lic in announced.items() if lic is not None and i not in LICENCES)
    return builtin + extra


def resolve_licence(
    licence_id: str, announced: Mapping[str, Licence | None] | None = None
) -> Licence:
    """The catalogue entry (id, name, URL) for a licence id, matched case-sensitively.

    ``announced`` holds the licences the auth service announced, by id, with ``None`` for
    one it deleted. The auth service is where a site manages its licences, so its entry
    wins over a built-in one of the same id, and a deleted licence is refused even where a
    built-in one has its id; the built-ins let intake work without an auth service.
    """
    announced = announced or {}
    if licence_id in announced:
        found = announced[licence_id]
        if found is not None:
            return found
        raise UnknownLicence(
            f"licence {licence_id!r} has been deleted and takes no new collections; "
            f"choose one of {', '.join(known_licences(announced))}"
        )
    if licence_id in LICENCES:
        return LICENCES[licence_id]
    raise UnknownLicence(
        f"unknown licence {licence_id!r}; choose one of {', '.join(known_licences(announced))}"
    )


# -- names in quarantine ---------------------------------------------------------------------


def instance_id(secret: bytes, collection: str, patient_id: str, sop_instance_uid: str) -> str:
    """The stable id of one submitted instance: HMAC-SHA256 over collection|PatientID|
    SOPInstanceUID, 32 hex digits.

    Keyed, so that the id (and the quarantine key built from it) carries no PHI; stable, so
    that the same instance sent again replaces itself instead of appearing twice.
    """
    return _keyed(secret, collection, patient_id, sop_instance_uid)


def patient_token(secret: bytes, collection: str, patient_key: str) -> str:
    """Who a UID belongs to (see service/integrity.py), without the PatientID itself."""
    return _keyed(secret, collection, patient_key)


def _keyed(secret: bytes, *parts: str) -> str:
    """HMAC-SHA256 over the parts joined by ``|``, 32 hex digits."""
    return hmac.new(secret, "|".join(parts).encode(), hashlib.sha256).hexdigest()[:32]


def quarantine_key(collection: str, instance: str) -> str:
    return f"{collection}/{instance}.dcm"


def held_key(collection: str, held: str) -> str:
    return f"{collection}/held/{held}"


# -- what a file is --------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """A Part 10 file with the identifying attributes quarantine and de-id need."""

    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str = ""
    modality: str = ""
    issuer_of_patient_id: str = ""

    @property
    def patient_key(self) -> str:
        """Who the patient is: PatientID, qualified by IssuerOfPatientID when there is one
        (the same PatientID from two issuers is two patients). A backslash cannot occur in
        either (LO), so the two parts stay apart."""
        if not self.issuer_of_patient_id:
            return self.patient_id
        return f"{self.patient_id}\\{self.issuer_of_patient_id}"


@dataclass(frozen=True)
class Held:
    """A file that cannot go on: ``reason`` is the sentence a submitter reads; ``code`` is a
    short, fixed label (metrics must not get one series per error message)."""

    code: str
    reason: str


Verdict = Accepted | Held

#: Attributes every accepted instance must carry, non-empty: the UIDs that place it in the
#: Patient/Study/Series/Instance hierarchy (PS3.3 C.7) and the PatientID de-id maps.
REQUIRED: tuple[tuple[str, str], ...] = (
    ("SOPInstanceUID", "(0008,0018)"),
    ("StudyInstanceUID", "(0020,000D)"),
    ("SeriesInstanceUID", "(0020,000E)"),
    ("PatientID", "(0010,0020)"),
)
UIDS = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
UID_MAX = 64  # PS3.5 9.1: a UID is at most 64 characters
PREAMBLE = 128  # PS3.10 7.1: 128-byte preamble, then "DICM"
NOT_PART10 = "not a DICOM Part 10 file (no DICM prefix at byte 128)"


def inspect(data: bytes, limits: Limits = Limits()) -> Verdict:
    """Decide whether one submitted file may enter quarantine.

    The file must be a DICOM Part 10 file (PS3.10 7.1: preamble and ``DICM`` prefix), whose
    header reads without error and whose data elements are all present in full, and it must
    carry SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID and PatientID. The encoding is
    first walked by its lengths under the caps of ``limits`` (element count, sequence depth,
    and for a deflated dataset its inflated size and ratio); only then is the header parsed,
    up to the pixel data, whose bytes are never decoded. A file past a cap is held with code
    ``limit`` and a reason naming the setting.
    """
    if len(data) < PREAMBLE + 4 or data[PREAMBLE : PREAMBLE + 4] != b"DICM":
        return Held("not_part10", NOT_PART10)
    try:
        # pydicom warns about odd but readable encodings; the hold reason is what users see.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = _header(data, limits)
            if isinstance(header, Held):
                return header
            ds, top = header
            # before any value is read (pydicom would log a value it finds invalid)
            invalid = first_invalid(ds)
            if invalid:
                return Held("invalid_value", invalid)
            values = {kw: _text(ds, kw) for kw, _ in REQUIRED}
            issuer = _text(ds, "IssuerOfPatientID")
            sop_class = _text(ds, "SOPClassUID") or _text(ds.file_meta, "MediaStorageSOPClassUID")
            modality = _text(ds, "Modality")
    except LimitExceeded as e:
        return Held(e.code, str(e))
    except Exception as e:  # pydicom raises many types on damaged input; all mean "unreadable"
        return Held("unreadable", f"truncated or unreadable DICOM: {_short(e)}")
    missing = [f"{kw} {tag}" for kw, tag in REQUIRED if not values[kw]]
    if missing:
        return Held("missing_attribute", f"missing {' and '.join(missing)}")
    if top and not top & PIXEL_TAGS and pydicom.uid.UID(sop_class).name.endswith("Image Storage"):
        # Every image IOD has the Image Pixel module (PS3.3 C.7.6.3); a header that ends
        # where its pixels should start is a file cut at an element boundary.
        return Held(
            "missing_attribute",
            f"missing PixelData (7FE0,0010): a {pydicom.uid.UID(sop_class).name} instance has "
            "pixels; was the file cut short?",
        )
    too_long = [kw for kw in UIDS if len(values[kw]) > UID_MAX]
    if too_long:
        return Held(
            "invalid_attribute",
            f"{' and '.join(too_long)} longer than {UID_MAX} characters (PS3.5 9.1)",
        )
    return Accepted(
        issuer_of_patient_id=issuer[:64],
        patient_id=values["PatientID"],
        study_instance_uid=values["StudyInstanceUID"],
        series_instance_uid=values["SeriesInstanceUID"],
        sop_instance_uid=values["SOPInstanceUID"],
        sop_class_uid=sop_class[:UID_MAX],
        modality=modality[:16],
    )


def _header(data: bytes, limits: Limits) -> tuple[Dataset, set[int]] | Held:
    """The dataset up to its pixel data and the tags of its top-level elements, or why the
    file is held as truncated.

    pydicom reads a short final value, or a sequence without its delimiter, without
    complaint (a file cut in its pixel data would read as whole), and inflates a deflated
    dataset and reads any number of elements without limit; the walk before it finds cuts
    and refuses bombs cheaply.
    """
    walker = Walker(data, limits)
    try:
        pos = walker.meta(PREAMBLE + 4)
    except Truncated as e:
        return Held(
            "truncated", f"truncated or unreadable DICOM: the file ends at byte {len(data)}, {e}"
        )
    meta = FileMetaDataset(
        read_dataset(
            io.BytesIO(data[PREAMBLE + 4 : pos]), is_implicit_VR=False, is_little_endian=True
        )
    )
    if meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        body = inflate(memoryview(data)[pos:], limits, "the deflated dataset")
        walker = Walker(body, limits)
        try:
            walker.dataset(0, implicit=False, little=True)
        except Truncated as e:
            return Held(
                "truncated",
                f"truncated or unreadable DICOM: the inflated dataset ends at byte "
                f"{len(body)}, {e}",
            )
        ds = read_dataset(
            io.BytesIO(body), is_implicit_VR=False, is_little_endian=True, stop_when=_at_pixels
        )
        ds.file_meta = meta
        return ds, walker.top
    implicit, little = _encoding(meta, data, pos)
    try:
        walker.dataset(pos, implicit=implicit, little=little)
    except Truncated as e:
        return Held(
            "truncated", f"truncated or unreadable DICOM: the file ends at byte {len(data)}, {e}"
        )
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True), walker.top


def _encoding(meta: Dataset, data: bytes, pos: int) -> tuple[bool, bool]:
    """(implicit VR, little endian) of the dataset at ``pos``: from the transfer syntax, or
    guessed from its first element as pydicom does when the file meta names none."""
    syntax = meta.get("TransferSyntaxUID")
    if syntax is not None:
        uid = pydicom.uid.UID(syntax)
        if uid.is_transfer_syntax:
            return uid.is_implicit_VR, uid.is_little_endian
        return False, True  # any other syntax is explicit VR little endian (PS3.5 A.4)
    if len(data) - pos >= 6 and data[pos + 4 : pos + 6].isalpha():
        (group,) = struct.unpack_from("<H", data, pos)
        return False, group < 1024
    return True, True


def _at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
    return int(tag) in PIXEL_TAGS


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip(" \x00")


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0][:200] if text else "") or type(e).__name__


# -- archives --------------------------------------------------------------------------------


def skip_zip_entry(name: str, is_dir: bool) -> bool:
    """Zip entries that are not submitted files: folders, and the ``__MACOSX/`` resource
    forks macOS adds when it zips a folder."""
    return is_dir or name.endswith("/") or name.startswith("__MACOSX/")


#: TCIA's policy for head and neck imaging from which a face could be reconstructed.
FACE_POLICY = (
    "head and neck CT or MR that could be reconstructed into a face is always limited access"
)


def access_with_face_policy(access: str, face_reconstructable: bool, asked: bool) -> str:
    """The access a collection gets: a face-reconstructable collection is limited access.

    ``asked`` says whether the caller named ``access`` (rather than taking the default); a
    request that names public access for a face-reconstructable collection is refused
    (ValueError with the sentence to show)."""
    if not face_reconstructable:
        return access
    if asked and access == "public":
        raise ValueError(
            f"{FACE_POLICY}: a collection marked face_reconstructable cannot be public; "
            "leave access out (it becomes limited) or unmark the collection"
        )
    return "limited"
