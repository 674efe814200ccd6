"""Rules of NBIA-compatible downloads: entry names and order of a series zip, the LICENSE
and md5hashes.csv entries, and the exact NBIA messages. Pure: no I/O.

The behaviour follows NBIA's ``V4_getImage`` and ``ImageDAO2Impl`` (the NBIA
compatibility reference, §3 getImage) so that tcia_utils and the TCIA Data Retrievers
work unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# PS3.6 tags read from the DICOM JSON header (PS3.18 F.2) of each published instance
INSTANCE_NUMBER = "00200013"
ACQUISITION_NUMBER = "00200012"

NOT_SPECIFIED = "Not Specified"
LICENSE_ENTRY = "LICENSE"
CITATION_ENTRY = "CITATION"
MD5_ENTRY = "md5hashes.csv"


@dataclass(frozen=True)
class Image:
    """One published instance of a series, as the download index keeps it."""

    sop_instance_uid: str
    key: str
    size: int
    sha256: str
    instance_number: int | None = None
    acquisition_number: int | None = None
    #: recorded when the object was written; None for objects older than that
    crc32: int | None = None


def access_denied(series_uid: str) -> str:
    """NBIA's answer for a series that is unknown *or* not accessible: the same words
    for both, so the answer never reveals whether a restricted series exists."""
    return (
        f"The user has not been granted the access to image with given SeriesInstanceUID,"
        f"{series_uid}. Please contact System Admin to resolve this issue."
    )


def missing_parameter(name: str) -> str:
    return f"A parameter, {name} is required for this API call."


def unknown_parameter(name: str, allowed: Sequence[str]) -> str:
    """NBIA v4 rejects query parameters it does not know (Java's List.toString)."""
    return f"Invalid query parameter: '{name}'. Allowed parameters are: [{', '.join(allowed)}]"


def is_yes(value: str | None) -> bool:
    return (value or "").strip().lower() == "yes"


@dataclass(frozen=True)
class Terms:
    """What every copy of a collection's data carries: its licence, how to cite it, and
    the data usage policy that mirrors and Data Analysis Centers pass on."""

    collection: str
    licence_name: str = ""
    licence_url: str = ""
    citation: str = ""
    doi: str = ""
    data_usage_policy: str = ""
    #: head/neck imaging from which a face could be reconstructed (limited access)
    face_reconstructable: bool = False
    #: ``public`` or ``limited``
    access: str = "public"


FACE_NOTICE = (
    "This collection holds head and neck CT or MR from which a face could be "
    "reconstructed. It is distributed under limited access only: do not attempt to "
    "reconstruct or recognise a face, and do not pass these data to anyone who has not "
    "accepted this license.\n"
)


def licence_text(terms: Terms) -> str:
    """The LICENSE entry: NBIA's sentence (first in every getImage zip, as NBIA writes
    it), then the data usage policy and what a copy must carry."""
    return (
        f"License Information. The {terms.collection or NOT_SPECIFIED} collection is "
        f"distributed under the {terms.licence_name or NOT_SPECIFIED} at "
        f"{terms.licence_url or NOT_SPECIFIED} "
        "By downloading the data, you agree to abide by terms of this license.\n"
        f"\nData usage policy: {terms.data_usage_policy or NOT_SPECIFIED}\n"
        "Whoever passes these data on (a mirror, a Data Analysis Center) passes this "
        "license, the CITATION file and the data usage policy on with them.\n"
    ) + (f"\n{FACE_NOTICE}" if terms.face_reconstructable else "")


def citation_text(terms: Terms) -> str:
    """The CITATION entry: the collection's citation and its DOI."""
    cite = terms.citation.strip() or f"The {terms.collection} collection."
    doi = terms.doi.strip()
    if doi and not doi.startswith("http"):
        doi = f"https://doi.org/{doi}"
    return f"Please cite these data as:\n\n{cite}\n" + (f"\nDOI: {doi}\n" if doi else "")


def notices(terms: Terms) -> list[tuple[str, bytes]]:
    """The entries that open every zip of the collection's data."""
    return [
        (LICENSE_ENTRY, licence_text(terms).encode()),
        (CITATION_ENTRY, citation_text(terms).encode()),
    ]


def nbia_order(images: Iterable[Image]) -> list[Image]:
    """NBIA's order of a series' images: by InstanceNumber, images without one first
    (``ImageDTO2.compareTo``); SOPInstanceUID breaks ties so the order is stable."""
    return sorted(
        images,
        key=lambda i: (i.instance_number is not None, i.instance_number or 0, i.sop_instance_uid),
    )


def default_file_names(count: int) -> list[str]:
    """Names without ``NewFileNames``: ``00000001.dcm``, ``00000002.dcm``, …"""
    return [f"{i:08d}.dcm" for i in range(1, count + 1)]


def new_file_names(ordered: Sequence[Image]) -> list[str]:
    """Names with ``NewFileNames=Yes``: ``{acquisition}-{image}.dcm`` (NBIA
    ``ImageDAO2Impl.setNewFileNames``), for images already in :func:`nbia_order`.

    The acquisition index counts changes of AcquisitionNumber (PS3.3 C.7.6.1) along the
    ordered images; the image index counts images within the current acquisition.
    Each is zero-padded to the digits of its total, where NBIA's totals are the number
    of runs of equal AcquisitionNumber and of equal InstanceNumber. A missing
    AcquisitionNumber counts as 0 (NBIA compares it against null there and would open a
    new acquisition at every such image).
    """
    if not ordered:
        return []
    acq_runs = ins_runs = 1
    acq, ins = ordered[0].acquisition_number, ordered[0].instance_number
    for im in ordered:
        if im.acquisition_number is not None and im.acquisition_number != acq:
            acq, acq_runs = im.acquisition_number, acq_runs + 1
        if im.instance_number is not None and im.instance_number != ins:
            ins, ins_runs = im.instance_number, ins_runs + 1
    acq_pad, ins_pad = len(str(acq_runs)), len(str(ins_runs))

    names: list[str] = []
    current = ordered[0].acquisition_number or 0
    acq_index, ins_index = 1, 0
    for im in ordered:
        number = im.acquisition_number or 0
        if number != current:
            current, acq_index, ins_index = number, acq_index + 1, 1
        else:
            ins_index += 1
        names.append(f"{acq_index:0{acq_pad}d}-{ins_index:0{ins_pad}d}.dcm")
    return names


def md5_csv(rows: Iterable[tuple[str, str]]) -> str:
    """The ``md5hashes.csv`` entry: a ``Filename,MD5Hash`` header, then unquoted rows."""
    return "".join(f"{name},{md5}\n" for name, md5 in (("Filename", "MD5Hash"), *rows))
