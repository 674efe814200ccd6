"""QIDO-RS (DICOM PS3.18 §10.6): what a search asks for and what it answers, over headers
in the DICOM JSON model. Pure: the SQL for the matching lives in queries/dicomweb.py.

Matching follows PS3.4 C.2.2.2: single value matching (exact; person names ignore case),
lists of UIDs (``,`` or ``\\`` between them), wildcards (``*`` and ``?``, not on dates,
times or UIDs), ranges on dates and times (``a-b``, ``-b``, ``a-``) and universal matching
(an empty value: no condition, the attribute is returned). A multi-valued attribute
matches when any of its values does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

from services.common.contracts import MAX_OFFSET
from services.common.dicom_json import Header, tag

LEVELS = ("study", "series", "instance")
NUMERIC_VRS = frozenset({"IS", "DS", "US", "UL", "SS", "SL", "FL", "FD", "UV", "SV"})
RANGE_VRS = frozenset({"DA", "DT", "TM"})
#: most results one search answers with (a client pages with limit/offset)
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000


class Kind(Enum):
    SINGLE = "single"
    UIDS = "uids"
    WILDCARD = "wildcard"
    RANGE = "range"


@dataclass(frozen=True)
class Match:
    """One matching key: ``tag`` (8 hex digits) with its VR and what it must match."""

    tag: str
    vr: str
    kind: Kind
    values: tuple[Any, ...] = ()

    @property
    def person_name(self) -> bool:
        return self.vr == "PN"


class QidoError(ValueError):
    """A search the server cannot run; the message says what to change."""


def _study(*keywords: str) -> tuple[str, ...]:
    return tuple(tag(k) for k in keywords)


#: the attributes each level answers with by default (PS3.18 Table 10.6.3-3 to -5)
STUDY_TAGS = _study(
    "SpecificCharacterSet", "StudyDate", "StudyTime", "AccessionNumber",
    "ReferringPhysicianName", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyID", "StudyDescription",
)  # fmt: skip
SERIES_TAGS = _study(
    "SpecificCharacterSet", "Modality", "SeriesDescription", "SeriesInstanceUID",
    "SeriesNumber", "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
    "StudyInstanceUID", "BodyPartExamined",
)  # fmt: skip
INSTANCE_TAGS = _study(
    "SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows",
    "Columns", "BitsAllocated", "NumberOfFrames", "StudyInstanceUID", "SeriesInstanceUID",
)  # fmt: skip
MODALITIES_IN_STUDY = tag("ModalitiesInStudy")
NUMBER_OF_STUDY_SERIES = tag("NumberOfStudyRelatedSeries")
NUMBER_OF_STUDY_INSTANCES = tag("NumberOfStudyRelatedInstances")
NUMBER_OF_SERIES_INSTANCES = tag("NumberOfSeriesRelatedInstances")
RETRIEVE_URL = tag("RetrieveURL")
CONTROL = frozenset({"includefield", "fuzzymatching", "limit", "offset"})


def attribute(name: str) -> tuple[str, str]:
    """A QIDO attribute ID (keyword or 8 hex digits) as (tag, VR)."""
    if "." in name:
        raise QidoError(f"{name}: matching inside sequences is not supported")
    if re.fullmatch(r"[0-9A-Fa-f]{8}", name):
        number = int(name, 16)
    else:
        found = tag_for_keyword(name)
        if found is None:
            raise QidoError(
                f"{name} is not a DICOM attribute keyword or tag; use a keyword such as "
                "StudyDate or 8 hex digits such as 00080020"
            )
        number = found
    try:
        vr = str(dictionary_VR(number))
    except KeyError:
        vr = "UN"
    if vr == "SQ":
        raise QidoError(
            f"{name} is a sequence; matching inside sequences is not supported, ask for it "
            "with includefield instead"
        )
    return f"{number:08X}", vr.split(" or ")[0]


def _number(text: str, name: str) -> float | int:
    try:
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    except ValueError:
        raise QidoError(f"{name}={text!r}: this attribute holds numbers") from None


_DATE_PATTERNS = {
    "DA": r"\d{8}",
    "TM": r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?",
    "DT": r"\d{4,14}(\.\d{1,6})?([+-]\d{4})?",
}


def _date_part(text: str, vr: str, name: str) -> str:
    cleaned = text.replace(".", "") if vr == "DA" else text
    pattern = {
        "DA": r"\d{8}",
        "TM": r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?",
        "DT": r"\d{4,14}(\.\d{1,6})?",
    }
    if not re.fullmatch(pattern[vr], cleaned):
        example = {"DA": "20200131", "TM": "093000", "DT": "20200131093000"}[vr]
        raise QidoError(f"{name}={text!r} is not a {vr} value such as {example}")
    return cleaned


def match(name: str, value: str) -> Match | None:
    """The matching key ``name=value`` asks for; None for universal matching."""
    key, vr = attribute(name)
    value = value.strip()
    if not value:
        return None
    if vr == "UI":
        uids = tuple(u for u in re.split(r"[,\\]", value) if u)
        return Match(key, vr, Kind.UIDS, uids)
    if vr in RANGE_VRS:
        if "-" in value:
            start, _, end = value.partition("-")
            low = _date_part(start, vr, name) if start else None
            high = _date_part(end, vr, name) if end else None
            return Match(key, vr, Kind.RANGE, (low, high))
        return Match(key, vr, Kind.SINGLE, (_date_part(value, vr, name),))
    if vr in NUMERIC_VRS:
        return Match(key, vr, Kind.SINGLE, (_number(value, name),))
    if "*" in value or "?" in value:
        return Match(key, vr, Kind.WILDCARD, (value,))
    return Match(key, vr, Kind.SINGLE, (value,))


def like_pattern(wildcard: str) -> str:
    """A QIDO wildcard as a SQL LIKE pattern with ``\\`` as the escape character."""
    escaped = wildcard.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


@dataclass(frozen=True)
class Search:
    """A parsed QIDO-RS request."""

    matches: tuple[Match, ...]
    include: frozenset[str]  # tags, or {"all"}
    limit: int
    offset: int
    fuzzy: bool = False

    def wants(self, key: str) -> bool:
        return "all" in self.include or key in self.include


def _int(value: str, name: str, low: int, high: int | None = None) -> int:
    try:
        n = int(value)
    except ValueError:
        raise QidoError(f"{name} must be a whole number, not {value!r}") from None
    if n < low or (high is not None and n > high):
        bound = f"between {low} and {high}" if high is not None else f"{low} or more"
        raise QidoError(f"{name} must be {bound}")
    return n


def parse(params: Iterable[tuple[str, str]]) -> Search:
    """A QIDO-RS query string (PS3.18 §8.3.4) as a :class:`Search`."""
    matches: list[Match] = []
    include: set[str] = set()
    limit, offset, fuzzy = DEFAULT_LIMIT, 0, False
    for name, value in params:
        if name == "includefield":
            for item in (v.strip() for v in value.split(",")):
                if item == "all":
                    include.add("all")
                elif item:
                    include.add(attribute(item)[0])
        elif name == "limit":
            limit = _int(value, "limit", 1, MAX_LIMIT)
        elif name == "offset":
            offset = _int(value, "offset", 0, MAX_OFFSET)
        elif name == "fuzzymatching":
            fuzzy = value.strip().lower() == "true"
        else:
            m = match(name, value)
            if m is not None:
                matches.append(m)
            else:
                include.add(attribute(name)[0])
    return Search(tuple(matches), frozenset(include), limit, offset, fuzzy)


def matches_value(m: Match, element: Mapping[str, Any] | None) -> bool:
    """Whether one header element satisfies ``m`` (the same rule the SQL applies)."""
    values = list((element or {}).get("Value") or ())
    if m.person_name:
        values = [v.get("Alphabetic") if isinstance(v, dict) else v for v in values]
    texts = [v for v in values if v is not None]
    if m.kind is Kind.UIDS:
        return any(v in m.values for v in texts)
    if m.kind is Kind.RANGE:
        low, high = m.values
        return any(
            (low is None or str(v) >= low) and (high is None or str(v) <= high) for v in texts
        )
    if m.kind is Kind.WILDCARD:
        rx = re.compile(
            "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in m.values[0]),
            re.I if m.person_name else 0,
        )
        return any(rx.fullmatch(str(v)) for v in texts)
    if m.person_name:
        return any(str(v).lower() == str(m.values[0]).lower() for v in texts)
    return any(v == m.values[0] for v in texts)


def select(header: Header, tags: Sequence[str], search: Search) -> dict[str, Any]:
    """The attributes a response object carries: the level's, the matching keys and the
    included fields, those the header has."""
    if "all" in search.include:
        return dict(header)
    wanted = {*tags, *search.include, *(m.tag for m in search.matches)}
    return {k: header[k] for k in sorted(wanted) if k in header}


def common_header(headers: Sequence[Header]) -> dict[str, Any]:
    """The attributes every instance of a series has with the same value: the series'
    own header, against which series and study searches match."""
    if not headers:
        return {}
    common = dict(headers[0])
    for h in headers[1:]:
        for key in [k for k, v in common.items() if h.get(k) != v]:
            del common[key]
    return common


def element(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}
