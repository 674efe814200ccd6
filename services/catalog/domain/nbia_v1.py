"""NBIA's v1 API: the listings tcia_utils 1.x and 2.x (and scripts written for them) read.

v1 names most columns as v4 does, without ``Authorized``; getSeries has ``TimeStamp`` and
``CollectionURI`` instead of v4's site, patient and release columns; patient listings add
``PatientBirthDate``; getContentsByName (shared carts) ends with ``Date Released`` and
getSeriesMetaData speaks NBIA's old spaced names. Dates are written as Java's
``Timestamp.toString()`` (``2015-07-20 14:43:43.0``); date parameters are ``dd/MM/yyyy``
(getUpdatedSeries) or ``yyyy/MM/dd`` (the ``Date`` of NewPatientsInCollection and
NewStudiesInPatientCollection).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from services.catalog.domain.collections import CollectionInfo
from services.catalog.domain.nbia import (
    STUDY_COLS,
    Record,
    patient_values,
    pick,
    series_values,
    study_values,
)
from services.common.dicom_json import Header, text

SERIES_COLS = (
    "SeriesInstanceUID", "StudyInstanceUID", "Modality", "ProtocolName", "SeriesDate",
    "SeriesDescription", "BodyPartExamined", "SeriesNumber", "AnnotationsFlag", "Collection",
    "PatientID", "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "ImageCount",
    "TimeStamp", "LicenseName", "LicenseURI", "CollectionURI", "FileSize", "DateReleased",
    "StudyDesc", "StudyDate", "ThirdPartyAnalysis",
)  # fmt: skip
UPDATED_SERIES_COLS = (*SERIES_COLS[:15], "DateReleased")
SHARED_CART_COLS = (*SERIES_COLS[:15], "Date Released")
PATIENT_V1_COLS = (
    "PatientId", "PatientName", "PatientBirthDate", "PatientSex", "EthnicGroup", "Collection",
    "Phantom", "SpeciesCode", "SpeciesDescription",
)  # fmt: skip
STUDY_V1_COLS = (
    *STUDY_COLS[: STUDY_COLS.index("PatientName") + 1],
    "PatientBirthDate",
    *STUDY_COLS[STUDY_COLS.index("PatientSex") : STUDY_COLS.index("Authorized")],
)
SERIES_METADATA_COLS = (
    "Series UID", "Collection", "3rd Party Analysis", "Data Description URI", "Subject ID",
    "Study UID", "Study Description", "Study Date", "Series Description", "Manufacturer",
    "Modality", "SOP Class UID", "Number of Images", "File Size", "File Location",
    "Series Number", "License Name", "License URL", "Annotation Size", "Date Released",
    "Series Date", "Protocol Name", "Body Part Examined", "Annotations Flag",
    "Manufacturer Model Name", "Software Versions", "TimeStamp",
)  # fmt: skip


def java_date(da: str | None) -> str | None:
    """``YYYYMMDD`` as a Java ``Timestamp.toString()`` at midnight."""
    if not da:
        return None
    return f"{da[0:4]}-{da[4:6]}-{da[6:8]} 00:00:00.0"


def java_timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + str(moment.microsecond // 100_000)


def _series_v1_values(r: Record, coll: CollectionInfo) -> dict[str, Any]:
    released = java_timestamp(r["released_at"])
    return {
        **series_values(r, coll),
        "SeriesDate": java_date(r["series_date"]),
        "StudyDate": java_date(r["study_date"]),
        "TimeStamp": released,
        "DateReleased": released,
        "Date Released": released,
        "CollectionURI": coll.doi_url,
    }


def series_row(r: Record, coll: CollectionInfo) -> dict[str, Any]:
    return pick(_series_v1_values(r, coll), SERIES_COLS)


def updated_series_row(r: Record, coll: CollectionInfo) -> dict[str, Any]:
    return pick(_series_v1_values(r, coll), UPDATED_SERIES_COLS)


def shared_cart_row(r: Record, coll: CollectionInfo) -> dict[str, Any]:
    return pick(_series_v1_values(r, coll), SHARED_CART_COLS)


def patient_row(r: Record) -> dict[str, Any]:
    values = {**patient_values(r), "PatientBirthDate": java_date(r["patient_birth_date"])}
    return pick(values, PATIENT_V1_COLS)


def study_row(r: Record) -> dict[str, Any]:
    values = {
        **patient_values(r),
        **study_values(r),
        "StudyDate": java_date(r["study_date"]),
        "PatientBirthDate": java_date(r["patient_birth_date"]),
    }
    return pick(values, STUDY_V1_COLS)


_NOT_PLAIN = re.compile(r"[^a-zA-Z0-9 .-]")


def series_metadata_row(r: Record, coll: CollectionInfo, header: Header | None) -> dict[str, Any]:
    """v1 getSeriesMetaData: one series under NBIA's spaced names; descriptions keep only
    letters, digits, spaces, dots and dashes, and manufacturers lose their commas, as
    NBIA's v1 writes them."""
    v = _series_v1_values(r, coll)

    def plain(value: str | None) -> str | None:
        return _NOT_PLAIN.sub("", value) if value is not None else None

    values = {
        "Series UID": v["SeriesInstanceUID"],
        "Collection": v["Collection"],
        "3rd Party Analysis": v["ThirdPartyAnalysis"],
        "Data Description URI": v["DataDescriptionURI"],
        "Subject ID": v["PatientID"],
        "Study UID": v["StudyInstanceUID"],
        "Study Description": plain(v["StudyDesc"]),
        "Study Date": v["StudyDate"],
        "Series Description": plain(v["SeriesDescription"]),
        "Manufacturer": v["Manufacturer"].replace(",", " ") if v["Manufacturer"] else None,
        "Modality": v["Modality"],
        "SOP Class UID": text(header, "SOPClassUID") if header else None,
        "Number of Images": v["ImageCount"],
        "File Size": v["FileSize"],
        "Series Number": v["SeriesNumber"],
        "License Name": v["LicenseName"],
        "License URL": v["LicenseURI"],
        "Date Released": v["DateReleased"],
        "Series Date": v["SeriesDate"],
        "Protocol Name": v["ProtocolName"],
        "Body Part Examined": v["BodyPartExamined"],
        "Manufacturer Model Name": v["ManufacturerModelName"],
        "Software Versions": v["SoftwareVersions"],
        "TimeStamp": v["TimeStamp"],
    }
    return pick(values, SERIES_METADATA_COLS)
