"""How NBIA's search API names, orders and writes what the catalog holds.

Each listing is a tuple of NBIA column names in NBIA's order (``SERIES_COLS``, …); the
values come from one mapping per level of the tree (:func:`series_values`,
:func:`patient_values`, :func:`study_values`), keyed by those names, and a row is the
listing's columns picked from them by name, nulls left out (NBIA's JSON writer drops a key
whose value is null). The conventions are those of NBIA's v4 API as tcia_utils uses it:
``MM-DD-YYYY`` dates, ``Authorized`` always 1 (rows are filtered on access first),
``Phantom`` "NO".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

from services.catalog.domain.collections import CollectionInfo

Record = Mapping[Any, Any]  # a table row (SQLAlchemy RowMapping) keyed by column name

# -- the listings, in NBIA's column order ------------------------------------------------

SERIES_COLS = (
    "SeriesInstanceUID", "StudyInstanceUID", "Modality", "ProtocolName", "SeriesDate",
    "SeriesDescription", "BodyPartExamined", "SeriesNumber", "AnnotationsFlag", "Collection",
    "Site", "PatientID", "PatientSex", "PatientAge", "AdmittingDiagnosisDescription",
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "ImageCount",
    "MaxSubmissionTimestamp", "LicenseName", "LicenseURI", "DataDescriptionURI", "FileSize",
    "ReleasedStatus", "DateReleased", "StudyDesc", "StudyDate", "ThirdPartyAnalysis",
    "Authorized",
)  # fmt: skip
PATIENT_COLS = (
    "PatientId", "PatientName", "PatientSex", "EthnicGroup", "Collection", "Phantom",
    "SpeciesCode", "SpeciesDescription", "Authorized",
)  # fmt: skip
STUDY_COLS = (
    "StudyInstanceUID", "StudyDate", "StudyDescription", "AdmittingDiagnosesDescription",
    "StudyID", "PatientAge", "PatientID", "PatientName", "PatientSex", "EthnicGroup",
    "Collection", "SeriesCount", "LongitudinalTemporalEventType",
    "LongitudinalTemporalOffsetFromEvent", "Authorized",
)  # fmt: skip
SERIES_METADATA_COLS = (
    "PatientID", "PatientName", "PatientSex", "EthnicGroup", "Phantom", "SpeciesCode",
    "SpeciesDescription", "StudyInstanceUID", "StudyDate", "StudyDesc",
    "AdmittingDiagnosisDescription", "StudyID", "PatientAge", "LongitudinalTemporalEventType",
    "LongitudinalTemporalOffsetFromEvent", "SeriesInstanceUID", "Collection", "Site",
    "Modality", "ProtocolName", "SeriesDate", "SeriesDescription", "BodyPartExamined",
    "SeriesNumber", "AnnotationsFlag", "Manufacturer", "ManufacturerModelName",
    "PixelSpacing(mm)-Row", "SliceThickness(mm)", "SoftwareVersions", "ImageCount",
    "MaxSubmissionTimestamp", "LicenseName", "LicenseURI", "DataDescriptionURI", "FileSize",
    "ReleasedStatus", "DateReleased", "ThirdPartyAnalysis", "Authorized",
)  # fmt: skip
PATIENT_ID_COLS = ("PatientId", "Authorized")
SERIES_SIZE_COLS = ("TotalSizeInBytes", "ObjectCount")
COLLECTION_DESCRIPTION_COLS = ("collectionName", "description", "descriptionURI", "id")
#: the collection's part of a series row (the rest belongs to the series itself)
LICENCE_COLS = ("LicenseName", "LicenseURI", "DataDescriptionURI")


def pick(values: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """A row of ``columns``, in their order, without the null ones."""
    return {c: v for c in columns if (v := values.get(c)) is not None}


# -- dates ---------------------------------------------------------------------------------


def nbia_date(da: str | None) -> str | None:
    """``YYYYMMDD`` → NBIA v4's ``MM-DD-YYYY``."""
    if not da:
        return None
    return f"{da[4:6]}-{da[6:8]}-{da[0:4]}"


def nbia_day(moment: datetime | None) -> str | None:
    """A stored timestamp as NBIA's ``MM-DD-YYYY`` (the day in UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment.month:02d}-{moment.day:02d}-{moment.year:04d}"


def parse_nbia_date(value: str, fmt: str = "%m-%d-%Y") -> datetime | None:
    """A date parameter (v4: ``MM-DD-YYYY``) as midnight UTC, or None if it is not one."""
    try:
        day = datetime.strptime(value.strip(), fmt).date()
    except ValueError:
        return None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# -- values by NBIA name, one mapping per level of the tree --------------------------------


def licence_values(coll: CollectionInfo) -> dict[str, Any]:
    return {
        "LicenseName": coll.licence_name or None,
        "LicenseURI": coll.licence_url or None,
        "DataDescriptionURI": coll.doi_url,
    }


def series_values(r: Record, coll: CollectionInfo) -> dict[str, Any]:
    """A ``series`` table row under NBIA's names (with the patient and study attributes
    the series row repeats)."""
    released = nbia_day(r["released_at"])
    return {
        "SeriesInstanceUID": r["series_instance_uid"],
        "StudyInstanceUID": r["study_instance_uid"],
        "Modality": r["modality"],
        "ProtocolName": r["protocol_name"],
        "SeriesDate": nbia_date(r["series_date"]),
        "SeriesDescription": r["series_description"],
        "BodyPartExamined": r["body_part_examined"],
        "SeriesNumber": r["series_number"],
        "Collection": r["collection"],
        "Site": r["site"],
        "PatientID": r["patient_id"],
        "PatientSex": r["patient_sex"],
        "PatientAge": r["patient_age"],
        "AdmittingDiagnosisDescription": r["admitting_diagnosis_description"],
        "Manufacturer": r["manufacturer"],
        "ManufacturerModelName": r["manufacturer_model_name"],
        "SoftwareVersions": r["software_versions"],
        "ImageCount": r["image_count"],
        # The catalog records no per-image submission time; the series' publication is
        # the latest moment its images were accepted.
        "MaxSubmissionTimestamp": released,
        **licence_values(coll),
        "FileSize": r["file_size"],
        "ReleasedStatus": "Yes",
        "DateReleased": released,
        "StudyDesc": r["study_description"],
        "StudyDate": nbia_date(r["study_date"]),
        "ThirdPartyAnalysis": "NO",
        "Authorized": 1,
        "PixelSpacing(mm)-Row": r["pixel_spacing"],
        "SliceThickness(mm)": r["slice_thickness"],
    }


def patient_values(r: Record) -> dict[str, Any]:
    """A ``patients`` row (or a row joined with one) under NBIA's names. NBIA spells the
    identifier ``PatientId`` in patient listings and ``PatientID`` elsewhere."""
    return {
        "PatientId": r["patient_id"],
        "PatientID": r["patient_id"],
        "PatientName": r["patient_name"],
        "PatientSex": r["patient_sex"],
        "EthnicGroup": r["ethnic_group"],
        "Collection": r["collection"],
        "Phantom": "NO",
        "SpeciesCode": r["species_code"],
        "SpeciesDescription": r["species_description"],
        "Authorized": 1,
    }


def study_values(r: Record) -> dict[str, Any]:
    """A ``studies`` row (or a row joined with one) under NBIA's names."""
    return {
        "StudyInstanceUID": r["study_instance_uid"],
        "StudyDate": nbia_date(r["study_date"]),
        "StudyDescription": r["study_description"],
        "AdmittingDiagnosesDescription": r["admitting_diagnoses_description"],
        "StudyID": r["study_id"],
        "PatientAge": r["patient_age"],
        "SeriesCount": r["series_count"],
        "LongitudinalTemporalEventType": r["longitudinal_temporal_event_type"],
        "LongitudinalTemporalOffsetFromEvent": r["longitudinal_temporal_offset_from_event"],
    }


# -- rows ----------------------------------------------------------------------------------


def series_row(r: Record, coll: CollectionInfo) -> dict[str, Any]:
    """One v4 getSeries row from a ``series`` table row."""
    return pick(series_values(r, coll), SERIES_COLS)


def patient_row(r: Record) -> dict[str, Any]:
    """One v4 getPatient row."""
    return pick(patient_values(r), PATIENT_COLS)


def study_row(r: Record) -> dict[str, Any]:
    """One v4 getPatientStudy row; ``r`` joins a study with its patient."""
    return pick({**patient_values(r), **study_values(r)}, STUDY_COLS)


def series_metadata_row(r: Record, coll: CollectionInfo) -> dict[str, Any]:
    """One getSeriesMetadata row; ``r`` is a series row with its patient's attributes and
    its study's ``study_id`` and longitudinal temporal attributes. The series' own copies
    of the study attributes (StudyDate, PatientAge, …) are the ones shown, as in
    getSeries."""
    values = {
        **patient_values(r),
        **series_values(r, coll),
        "StudyID": r["study_id"],
        "LongitudinalTemporalEventType": r["longitudinal_temporal_event_type"],
        "LongitudinalTemporalOffsetFromEvent": r["longitudinal_temporal_offset_from_event"],
    }
    return pick(values, SERIES_METADATA_COLS)


# getSeries as JSON is the hot path: each series row stores its NBIA JSON members, split
# around the licence fields (which belong to the collection and may change), so a listing
# is assembled by concatenation instead of building and encoding a dict per series.
# Bump the version whenever series_row changes: older stored parts are then not used.
SERIES_JSON_VERSION = 1
_BEFORE_LICENCE = SERIES_COLS[: SERIES_COLS.index(LICENCE_COLS[0])]
_AFTER_LICENCE = SERIES_COLS[SERIES_COLS.index(LICENCE_COLS[-1]) + 1 :]


def _members(row: Mapping[str, Any]) -> str:
    """The members of a JSON object, without the braces (``"a":1,"b":2``)."""
    return to_json(row).decode()[1:-1]


def series_json_parts(r: Record) -> tuple[str, str]:
    """A series' getSeries JSON members before and after the licence fields."""
    values = series_values(r, CollectionInfo(id=0, name=r["collection"]))
    return _members(pick(values, _BEFORE_LICENCE)), _members(pick(values, _AFTER_LICENCE))


def licence_members(coll: CollectionInfo) -> str:
    return _members(pick(licence_values(coll), LICENCE_COLS))


def series_json(parts: Iterable[tuple[str, str, str]]) -> bytes:
    """The getSeries JSON body from (head, licence, tail) members; no rows → empty body."""
    objects = ["{" + ",".join(p for p in row if p) + "}" for row in parts]
    return ("[" + ",".join(objects) + "]").encode() if objects else b""


def collection_description_row(coll: CollectionInfo) -> dict[str, Any]:
    return pick(
        {
            "collectionName": coll.name,
            "description": coll.description or None,
            "descriptionURI": coll.doi_url,
            "id": coll.id,
        },
        COLLECTION_DESCRIPTION_COLS,
    )


# -- request parameters -------------------------------------------------------------------


def unknown_parameter(given: Iterable[str], allowed: Sequence[str]) -> str | None:
    """NBIA v4's message for the first query parameter it does not accept (names are
    case-sensitive), or None when all are accepted."""
    for name in given:
        if name not in allowed:
            return (
                f"Invalid query parameter: '{name}'. Allowed parameters are: [{', '.join(allowed)}]"
            )
    return None


def missing_parameter(name: str) -> str:
    return f"A parameter, {name} is required for this API call."


def bad_date(name: str, fmt: str = "%m-%d-%Y") -> str:
    written = fmt.replace("%m", "MM").replace("%d", "DD").replace("%Y", "YYYY")
    example = datetime(2023, 8, 1).strftime(fmt)
    return f"The parameter {name} must be a date written {written}, e.g. {example}."


_NOT_UID = re.compile(r"[^0-9.,]")


def series_uid_list(values_: Iterable[str]) -> list[str]:
    """The UIDs of a getSeriesMetadata ``list`` (comma-joined and/or repeated): NBIA strips
    everything but digits, dots and commas, which also removes quotes and spaces."""
    out: dict[str, None] = {}
    for value in values_:
        for uid in _NOT_UID.sub("", value).split(","):
            if uid:
                out.setdefault(uid, None)
    return list(out)
