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
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian

from services.common.events import Licence

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
    message = f"{collection}|{patient_id}|{sop_instance_uid}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


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
_UNDEFINED = 0xFFFFFFFF


def inspect(data: bytes) -> Verdict:
    """Decide whether one submitted file may enter quarantine.

    The file must be a DICOM Part 10 file (PS3.10 7.1: preamble and ``DICM`` prefix), whose
    header reads without error and whose data elements are all present in full, and it must
    carry SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID and PatientID. Only the header
    is parsed (pixel data is skipped, only its length checked): this runs for every file.
    """
    if len(data) < PREAMBLE + 4 or data[PREAMBLE : PREAMBLE + 4] != b"DICM":
        return Held("not_part10", NOT_PART10)
    fp = io.BytesIO(data)
    try:
        # pydicom warns about odd but readable encodings; the hold reason is what users see.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
            top: set[int] = set()
            short = _truncation(ds, data, top)
            if short:
                return Held("truncated", f"truncated or unreadable DICOM: {short}")
            values = {kw: _text(ds, kw) for kw, _ in REQUIRED}
            sop_class = _text(ds, "SOPClassUID") or _text(ds.file_meta, "MediaStorageSOPClassUID")
            modality = _text(ds, "Modality")
    except Exception as e:  # pydicom raises many types on damaged input; all mean "unreadable"
        return Held("unreadable", f"truncated or unreadable DICOM: {_short(e)}")
    missing = [f"{kw} {tag}" for kw, tag in REQUIRED if not values[kw]]
    if missing:
        return Held("missing_attribute", f"missing {' and '.join(missing)}")
    if top and not top & _PIXEL_TAGS and pydicom.uid.UID(sop_class).name.endswith("Image Storage"):
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
        patient_id=values["PatientID"],
        study_instance_uid=values["StudyInstanceUID"],
        series_instance_uid=values["SeriesInstanceUID"],
        sop_instance_uid=values["SOPInstanceUID"],
        sop_class_uid=sop_class[:UID_MAX],
        modality=modality[:16],
    )


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip(" \x00")


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0][:200] if text else "") or type(e).__name__


class _Truncated(Exception):
    pass


#: Explicit VRs whose length is 32-bit, after two reserved bytes (PS3.5 Table 7.1-1).
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})  # (Float, Double Float) Pixel Data


def _truncation(ds: Dataset, data: bytes, top: set[int]) -> str | None:
    """Where the file ends before a data element it announces, if it does; adds the tags
    of the dataset's top-level elements to ``top``.

    pydicom reads a short final value, or a sequence without its delimiter, without
    complaint, so a file cut in its pixel data would read as whole. Walking the encoding by
    lengths alone (PS3.5 7.1 data elements, 7.5 sequences and items, A.4 encapsulated pixel
    data), without decoding any value, finds the cut cheaply.
    """
    meta = ds.file_meta
    group_length = meta.get("FileMetaInformationGroupLength")
    try:
        if group_length is None:  # not conformant, but readable: walk the group 0002 elements
            pos = _walk(data, PREAMBLE + 4, implicit=False, little=True, meta_only=True)
        else:
            pos = PREAMBLE + 4 + 12 + int(group_length)  # 12: the group length element itself
            if pos > len(data):
                raise _Truncated("inside the file meta information (PS3.10 7.1)")
        if meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
            return None  # one zlib stream: pydicom's inflate has already failed if it is short
        implicit, little = ds.original_encoding
        _walk(data, pos, implicit=bool(implicit), little=little is not False, top=top)
    except _Truncated as e:
        return f"the file ends at byte {len(data)}, {e}"
    return None


def _walk(
    data: bytes,
    pos: int,
    *,
    implicit: bool,
    little: bool,
    meta_only: bool = False,
    until: int | None = None,
    top: set[int] | None = None,
) -> int:
    """Skip data elements from ``pos`` to the end of the file, or to the delimiter of the
    undefined-length sequence or item ``until``; returns where they end."""
    size = len(data)
    order = "<" if little else ">"
    while pos < size:
        if size - pos < 8:
            raise _Truncated("inside the header of a data element")
        group, element = struct.unpack_from(order + "HH", data, pos)
        tag = group << 16 | element
        if meta_only and group != 0x0002:
            return pos
        if tag in (_ITEM_END, _SEQ_END):
            return pos + 8
        if top is not None:
            top.add(tag)
        vr = b""
        if implicit or group == 0xFFFE:  # items and delimiters carry no VR (PS3.5 7.5)
            (length,) = struct.unpack_from(order + "L", data, pos + 4)
            pos += 8
        elif (vr := data[pos + 4 : pos + 6]) in _LONG_VRS:
            if size - pos < 12:
                raise _Truncated("inside the header of a data element")
            (length,) = struct.unpack_from(order + "L", data, pos + 8)
            pos += 12
        else:
            (length,) = struct.unpack_from(order + "H", data, pos + 6)
            pos += 8
        if length == _UNDEFINED:
            # A sequence, an undefined-length item or encapsulated pixel data. The content of
            # an undefined-length UN is implicit VR little endian (PS3.5 6.2.2).
            if vr == b"UN":
                pos = _walk(data, pos, implicit=True, little=True, until=tag)
            else:
                pos = _walk(data, pos, implicit=implicit, little=little, until=tag)
            continue
        if pos + length > size:
            name = keyword_for_tag(tag) or "element"
            raise _Truncated(
                f"inside ({group:04X},{element:04X}) {name}, which needs "
                f"{pos + length - size} more bytes"
            )
        pos += length
    if until is not None:
        name = keyword_for_tag(until) or ("item" if until == _ITEM else "sequence")
        raise _Truncated(
            f"inside ({until >> 16:04X},{until & 0xFFFF:04X}) {name}, before its delimiter"
        )
    return pos


# -- archives --------------------------------------------------------------------------------


def skip_zip_entry(name: str, is_dir: bool) -> bool:
    """Zip entries that are not submitted files: folders, and the ``__MACOSX/`` resource
    forks macOS adds when it zips a folder."""
    return is_dir or name.endswith("/") or name.startswith("__MACOSX/")


def upload_too_large(limit: int) -> str:
    """Why a request body larger than the site's limit is refused."""
    return (
        f"this submission is larger than the {limit} bytes this site accepts at once "
        "(IMARC_INTAKE_MAX_UPLOAD_BYTES); send it in smaller parts"
    )


def zip_too_large(unpacked: int, limit: int) -> str | None:
    """Why a zip whose entries unpack to ``unpacked`` bytes is refused, if it is.

    A zip's central directory declares each entry's size (and reading stops there); summing
    them before unpacking anything stops a small zip that inflates to fill the disk.
    """
    if unpacked <= limit:
        return None
    return (
        f"this zip unpacks to {unpacked} bytes, more than the {limit} bytes this site accepts "
        "at once (IMARC_INTAKE_MAX_UPLOAD_BYTES); send it as several smaller zips"
    )


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
