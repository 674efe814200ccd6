"""What a published series contributes to the public index.

A ``series.published`` event names the series' place in the tree (collection, patient,
study, series: what the object keys were built from) and carries every instance's header
in the DICOM JSON model (PS3.18 F.2). From it the catalog keeps one row per collection,
patient, study, series and instance. A study is the study of one patient in one
collection: the same StudyInstanceUID arriving under two patients (a site's mistake, or
two collections sharing a study) makes two studies, so each patient's subtree stays whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.catalog.domain import nbia, qido
from services.common.db import as_utc
from services.common.dicom_json import (
    Header,
    as_text,
    dicom_date,
    integer,
    multi_text,
    number,
    text,
    values,
)
from services.common.events import CollectionUpdated, SeriesPublished

HUMAN_SPECIES_CODE = "337915000"  # SNOMED CT "Homo sapiens" (CID 7454)
HUMAN_SPECIES = "Homo sapiens"

#: the columns naming a series' place in the tree, from the patient down to the study
OWNER = ("collection", "patient_id", "study_instance_uid")
#: the key of a patient and of a study
PATIENT_KEY = ("collection", "patient_id")
STUDY_KEY = OWNER


@dataclass
class SeriesIndex:
    """The rows one ``series.published`` event puts in the catalog (keys = column names)."""

    collection: dict[str, Any]
    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]
    instances: list[dict[str, Any]] = field(default_factory=list)

    @property
    def owner(self) -> dict[str, str]:
        return {k: self.series[k] for k in OWNER}


def collection_row(record: CollectionUpdated, updated_at: datetime) -> dict[str, Any]:
    return {
        "name": record.name,
        "licence_id": record.licence.id,
        "licence_name": record.licence.name,
        "licence_url": record.licence.url,
        "access": record.access,
        "description": record.description,
        "doi": record.doi,
        "updated_at": as_utc(updated_at),
    }


def _first(headers: Sequence[Header], keyword: str, read: Any = text) -> Any:
    """The first instance's value that is present: a series' instances normally agree,
    and one instance missing an optional attribute should not blank the series."""
    for h in headers:
        v = read(h, keyword)
        if v is not None:
            return v
    return None


def _distinct(items: Iterable[str | None]) -> str | None:
    seen: dict[str, None] = {}
    for item in items:
        if item is not None:
            seen.setdefault(item, None)
    return ", ".join(seen) or None


def species(headers: Sequence[Header]) -> tuple[str, str]:
    """Patient Species (PS3.3 C.7.1.1): the code sequence, else the description, else the
    NBIA default of human."""
    for h in headers:
        items = values(h, "PatientSpeciesCodeSequence")
        if items and isinstance(items[0], dict):
            code = text(items[0], "CodeValue")
            meaning = text(items[0], "CodeMeaning")
            if code or meaning:
                return code or "", meaning or ""
        description = text(h, "PatientSpeciesDescription")
        if description:
            return "", description
    return HUMAN_SPECIES_CODE, HUMAN_SPECIES


def index_series(p: SeriesPublished, published_at: datetime) -> SeriesIndex:
    """Everything the catalog keeps about a published series.

    Identity (collection, patient, study, series) comes from the event, which is what the
    object keys were built from; descriptive attributes come from the instance headers.
    A SOP Instance UID listed twice counts once (the last entry wins).
    """
    by_sop = {i.sop_instance_uid: i for i in p.instances}
    headers = [i.header for i in by_sop.values()]
    series_uid = p.series_instance_uid
    rows = [
        {
            "series_instance_uid": series_uid,
            "sop_instance_uid": i.sop_instance_uid,
            "instance_number": integer(i.header, "InstanceNumber"),
            "key": i.key,
            "size": i.size,
            "sha256": i.sha256,
            "header": i.header,
        }
        for i in by_sop.values()
    ]
    species_code, species_description = species(headers)
    owner = {
        "collection": p.collection.name,
        "patient_id": p.patient_id,
        "study_instance_uid": p.study_instance_uid,
    }
    patient_sex = _first(headers, "PatientSex")
    patient_age = _first(headers, "PatientAge")
    diagnoses = _first(headers, "AdmittingDiagnosesDescription", multi_text)
    study_description = _first(headers, "StudyDescription")
    study_date = _first(headers, "StudyDate", dicom_date)
    pixel_rows = ((as_text(v[0]) if (v := values(h, "PixelSpacing")) else None) for h in headers)
    series: dict[str, Any] = {
        "series_instance_uid": series_uid,
        **owner,
        "site": p.site or None,
        "modality": _first(headers, "Modality"),
        "protocol_name": _first(headers, "ProtocolName"),
        "series_date": _first(headers, "SeriesDate", dicom_date),
        "series_description": _first(headers, "SeriesDescription"),
        "body_part_examined": _first(headers, "BodyPartExamined"),
        "series_number": _first(headers, "SeriesNumber", integer),
        "manufacturer": _first(headers, "Manufacturer"),
        "manufacturer_model_name": _first(headers, "ManufacturerModelName"),
        "software_versions": _first(headers, "SoftwareVersions", multi_text),
        "patient_sex": patient_sex,
        "patient_age": patient_age,
        "admitting_diagnosis_description": diagnoses,
        "study_description": study_description,
        "study_date": study_date,
        "pixel_spacing": _distinct(pixel_rows),
        "slice_thickness": _distinct(text(h, "SliceThickness") for h in headers),
        "image_count": len(rows),
        "file_size": sum(i.size for i in by_sop.values()),
        "released_at": as_utc(p.released_at),
        "published_at": as_utc(published_at),
    }
    series["header"] = qido.common_header(headers)
    head, tail = nbia.series_json_parts(series)
    series.update(nbia_head=head, nbia_tail=tail, nbia_version=nbia.SERIES_JSON_VERSION)
    return SeriesIndex(
        collection=collection_row(p.collection, datetime(1970, 1, 1, tzinfo=UTC)),
        patient={
            "collection": p.collection.name,
            "patient_id": p.patient_id,
            "patient_name": _first(headers, "PatientName"),
            "patient_sex": patient_sex,
            "patient_birth_date": _first(headers, "PatientBirthDate", dicom_date),
            "ethnic_group": _first(headers, "EthnicGroup"),
            "species_code": species_code or None,
            "species_description": species_description or None,
        },
        study={
            **owner,
            "study_date": study_date,
            "study_description": study_description,
            "admitting_diagnoses_description": diagnoses,
            "study_id": _first(headers, "StudyID"),
            "patient_age": patient_age,
            "longitudinal_temporal_event_type": _first(headers, "LongitudinalTemporalEventType"),
            "longitudinal_temporal_offset_from_event": _first(
                headers, "LongitudinalTemporalOffsetFromEvent", number
            ),
        },
        series=series,
        instances=rows,
    )
