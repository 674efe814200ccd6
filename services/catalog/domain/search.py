"""NBIA's simple search (getSimpleSearch and the manifests made from it): the form it takes
and the patient summary it answers with.

The form numbers its criteria from 0 without gaps: ``criteriaType{i}`` names one (see
:data:`CRITERIA`), ``value{i}`` gives its value, and a date range gives ``fromDate{i}`` and
``toDate{i}`` (``MM-DD-YYYY``, on the series' release date). Values of one criterion are
alternatives, different criteria must all hold. ``sortField``, ``sortDirection``,
``start`` and ``size`` page the patients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.catalog.domain.nbia import missing_parameter, parse_nbia_date

#: criteriaType → what it filters
CRITERIA = {
    "CollectionCriteria": "collection",
    "SpeciesCriteria": "species",
    "ImageModalityCriteria": "modality",
    "AnatomicalSiteCriteria": "body_part",
    "ManufacturerCriteria": "manufacturer",
    "PatientCriteria": "patient",
    "MinNumberOfStudiesCriteria": "min_studies",
    "ModalityAndedSearchCriteria": "modality_anded",
    "DateRangeCriteria": "date_range",
    # tcia_utils 3.x sends the str() of its enum member for the date range
    "Criteria.DateRange": "date_range",
}
SORT_FIELDS = ("subject", "studies", "series", "collection")
SORT_DIRECTIONS = ("ascending", "descending")


class SearchError(ValueError):
    """A simple search form NBIA's rules refuse; the message says what to send."""


@dataclass
class SimpleSearch:
    collections: list[str] = field(default_factory=list)
    species: list[str] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)
    body_parts: list[str] = field(default_factory=list)
    manufacturers: list[str] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    min_studies: int = 0
    modality_anded: bool = False
    released_from: datetime | None = None
    released_before: datetime | None = None  # exclusive: the day after toDate
    sort_field: str = "subject"
    sort_direction: str = "ascending"
    start: int = 0
    size: int = 10
    #: the form asked for one page of patients
    paged: bool = True

    def page(self, found: Sequence[Any]) -> Sequence[Any]:
        return found[self.start : self.start + self.size] if self.paged else found


def _integer(form: Mapping[str, str], name: str, low: int = 0) -> int:
    value = form.get(name, "").strip()
    if not value:
        raise SearchError(missing_parameter(name))
    try:
        n = int(value)
    except ValueError:
        raise SearchError(f"{name} must be a whole number, not {value!r}.") from None
    if n < low:
        raise SearchError(f"{name} must be {low} or more.")
    return n


def _date(form: Mapping[str, str], name: str) -> datetime:
    when = parse_nbia_date(form.get(name, ""))
    if when is None:
        raise SearchError(f"{name} must be a date written MM-DD-YYYY, e.g. 08-01-2023.")
    return when


def parse_form(form: Mapping[str, str], *, paged: bool = True) -> SimpleSearch:
    """The search a getSimpleSearch form asks for. ``paged``: the paging and sorting fields
    are required (NBIA fails without them); manifests take every matching series."""
    s = SimpleSearch()
    lists = {
        "collection": s.collections,
        "species": s.species,
        "modality": s.modalities,
        "body_part": s.body_parts,
        "manufacturer": s.manufacturers,
        "patient": s.patients,
    }
    i = 0
    while (kind := form.get(f"criteriaType{i}")) is not None:
        what = CRITERIA.get(kind.strip())
        value = form.get(f"value{i}", "").strip()
        if what in lists and value:
            lists[what].append(value)
        elif what == "min_studies" and value:
            s.min_studies = _integer(form, f"value{i}")
        elif what == "modality_anded":
            s.modality_anded = value.lower() == "all"
        elif what == "date_range":
            s.released_from = _date(form, f"fromDate{i}")
            s.released_before = _date(form, f"toDate{i}") + timedelta(days=1)
        i += 1
    if paged:
        for name in ("sortField", "sortDirection"):
            if not form.get(name, "").strip():
                raise SearchError(missing_parameter(name))
    s.paged = paged or bool(form.get("size", "").strip())
    if s.paged:
        s.start = _integer(form, "start") if paged or form.get("start", "").strip() else 0
        s.size = _integer(form, "size", 1)
    s.sort_field = form.get("sortField", "subject").strip() or "subject"
    s.sort_direction = form.get("sortDirection", "ascending").strip() or "ascending"
    if s.sort_field not in SORT_FIELDS:
        raise SearchError(f"sortField must be one of {', '.join(SORT_FIELDS)}.")
    if s.sort_direction not in SORT_DIRECTIONS:
        raise SearchError(f"sortDirection must be one of {', '.join(SORT_DIRECTIONS)}.")
    return s


@dataclass
class Patient:
    """One patient's series that match a search."""

    collection: str
    patient_id: str
    species: str | None
    studies: dict[str, list[str]] = field(default_factory=dict)  # study → series UIDs
    modalities: set[str] = field(default_factory=set)
    body_parts: set[str] = field(default_factory=set)

    @property
    def series(self) -> list[str]:
        return [uid for uids in self.studies.values() for uid in uids]


def patients(rows: Sequence[Mapping[Any, Any]], search: SimpleSearch) -> list[Patient]:
    """Group matching series rows (collection, patient_id, study and series UIDs,
    modality, body part, species) by patient, apply the patient-wide criteria (every
    modality asked for, a least number of studies) and sort as asked."""
    found: dict[tuple[str, str], Patient] = {}
    for r in rows:
        key = (r["collection"], r["patient_id"])
        p = found.setdefault(key, Patient(r["collection"], r["patient_id"], r["species_code"]))
        p.studies.setdefault(r["study_instance_uid"], []).append(r["series_instance_uid"])
        if r["modality"]:
            p.modalities.add(r["modality"])
        if r["body_part_examined"]:
            p.body_parts.add(r["body_part_examined"].upper())
    out = [p for p in found.values() if len(p.studies) >= search.min_studies]
    if search.modality_anded and search.modalities:
        wanted = {m.upper() for m in search.modalities}
        out = [p for p in out if wanted <= {m.upper() for m in p.modalities}]
    order: dict[str, Any] = {
        "subject": lambda p: (p.patient_id, p.collection),
        "studies": lambda p: (len(p.studies), p.patient_id),
        "series": lambda p: (len(p.series), p.patient_id),
        "collection": lambda p: (p.collection, p.patient_id),
    }
    out.sort(key=order[search.sort_field], reverse=search.sort_direction == "descending")
    return out


def _counts(values: Sequence[str]) -> list[dict[str, Any]]:
    counted: dict[str, int] = {}
    for v in values:
        counted[v] = counted.get(v, 0) + 1
    return [{"value": v, "count": n} for v, n in sorted(counted.items())]


def summary(found: Sequence[Patient], search: SimpleSearch) -> dict[str, Any]:
    """getSimpleSearch's answer: one page of patients, and over all of them the number of
    patients per body part, modality, collection and species."""
    page = search.page(found)
    return {
        "resultSet": [
            {
                "subjectId": p.patient_id,
                "project": p.collection,
                "id": search.start + n + 1,
                "authorized": 1,
                "totalNumberOfStudies": len(p.studies),
                "totalNumberOfSeries": len(p.series),
                "modalities": sorted(p.modalities),
                "bodyParts": sorted(p.body_parts),
                "species": [p.species] if p.species else [],
                "studyIdentifiers": [
                    {"studyIdentifier": i + 1, "seriesIdentifiers": list(range(1, len(s) + 1))}
                    for i, s in enumerate(p.studies.values())
                ],
                "timepoints": {},
            }
            for n, p in enumerate(page)
        ],
        "totalPatients": len(found),
        "bodyParts": _counts([b for p in found for b in p.body_parts]),
        "modalities": _counts([m for p in found for m in p.modalities]),
        "collections": _counts([p.collection for p in found]),
        "species": _counts([p.species for p in found if p.species]),
        "maxTimepoints": {},
        "minTimepoints": {},
        "sort": f"{search.sort_field}-{search.sort_direction}",
    }
