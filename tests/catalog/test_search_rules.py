"""Pure rules of the searches: QIDO-RS query strings and NBIA's simple search form."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.catalog.domain import qido, search
from services.catalog.domain.qido import Kind


def test_qido_keys_values_and_controls() -> None:
    s = qido.parse(
        [
            ("StudyDate", "20200101-"),
            ("00100010", "smith*"),
            ("StudyInstanceUID", "1.2,1.3\\1.4"),
            ("SeriesNumber", "4"),
            ("AccessionNumber", ""),
            ("includefield", "ImageType,00280010"),
            ("limit", "5"),
            ("offset", "10"),
        ]
    )
    kinds = {m.tag: (m.kind, m.values) for m in s.matches}
    assert kinds["00080020"] == (Kind.RANGE, ("20200101", None))
    assert kinds["00100010"] == (Kind.WILDCARD, ("smith*",))
    assert kinds["0020000D"] == (Kind.UIDS, ("1.2", "1.3", "1.4"))
    assert kinds["00200011"] == (Kind.SINGLE, (4,))
    # universal matching: no condition, the attribute is returned
    assert {"00080050", "00080008", "00280010"} <= s.include
    assert (s.limit, s.offset) == (5, 10)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([("Nonsense", "x")], "not a DICOM attribute keyword"),
        ([("StudyDate", "2020")], "not a DA value"),
        ([("SeriesNumber", "four")], "holds numbers"),
        ([("ReferencedSeriesSequence", "x")], "is a sequence"),
        ([("limit", "100000")], "limit must be between"),
        ([("offset", "9223372036854775808")], "offset must be between 0 and 1000000000"),
    ],
)
def test_qido_refusals_say_what_to_change(params: list, message: str) -> None:
    with pytest.raises(qido.QidoError, match=message):
        qido.parse(params)


def test_qido_matching_rules() -> None:
    pn = {"vr": "PN", "Value": [{"Alphabetic": "Smith^John"}]}
    assert qido.matches_value(qido.match("PatientName", "smith^john"), pn)
    assert qido.matches_value(qido.match("PatientName", "SMI*"), pn)
    cs = {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY"]}
    assert qido.matches_value(qido.match("ImageType", "PRIMARY"), cs)
    assert not qido.matches_value(qido.match("ImageType", "primary"), cs)
    da = {"vr": "DA", "Value": ["20200315"]}
    assert qido.matches_value(qido.match("StudyDate", "20200301-20200331"), da)
    assert qido.like_pattern("a_b%c*d?") == "a\\_b\\%c%d_"


def test_simple_search_form() -> None:
    form = {
        "criteriaType0": "Criteria.DateRange", "fromDate0": "08-01-2023", "toDate0": "08-31-2023",
        "criteriaType1": "CollectionCriteria", "value1": "Demo-CT",
        "criteriaType2": "ImageModalityCriteria", "value2": "CT",
        "criteriaType3": "ImageModalityCriteria", "value3": "MR",
        "criteriaType5": "PatientCriteria", "value5": "after-a-gap",
        "sortField": "series", "sortDirection": "descending", "start": "0", "size": "10",
    }  # fmt: skip
    s = search.parse_form(form)
    assert s.collections == ["Demo-CT"] and s.modalities == ["CT", "MR"]
    assert s.patients == []  # criteria are numbered without gaps
    assert s.released_from == datetime(2023, 8, 1, tzinfo=UTC)
    assert s.released_before == datetime(2023, 9, 1, tzinfo=UTC)
    with pytest.raises(search.SearchError, match="sortField is required"):
        search.parse_form({k: v for k, v in form.items() if k != "sortField"})
    with pytest.raises(search.SearchError, match="sortField must be one of"):
        search.parse_form({**form, "sortField": "age"})
    assert not search.parse_form({"criteriaType0": "CollectionCriteria"}, paged=False).paged
