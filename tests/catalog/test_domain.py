"""Pure rules: what a published series contributes, and NBIA's formats."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydicom import Dataset, examples
from pydicom.sequence import Sequence

from services.catalog.domain import formats, nbia
from services.catalog.domain.collections import CollectionInfo
from services.catalog.domain.dicom_tags import dicom_tag_rows
from services.catalog.domain.indexing import index_series
from services.common.dicom_json import dicom_date
from services.common.events import SeriesPublished
from tests.catalog import helpers as h


def payload(datasets: list[Dataset]) -> SeriesPublished:
    return h.published(datasets).payload(SeriesPublished)


def test_index_series_reads_the_headers() -> None:
    ct = h.ct(3, patient_id="DEMO-0007")
    when = datetime(2024, 1, 2, 3, 4, tzinfo=UTC)
    idx = index_series(payload(ct), when)
    s = idx.series
    assert s["series_instance_uid"] == ct[0].SeriesInstanceUID
    assert s["modality"] == "CT"
    assert s["series_date"] == "19970430"
    assert s["image_count"] == 3 and s["file_size"] == 3003
    assert s["pixel_spacing"] == "0.661468"  # one distinct value over three images
    assert s["published_at"] == when
    assert idx.patient["patient_name"] == "CompressedSamples^CT1"
    assert idx.patient["species_code"] == "337915000"
    assert idx.study["study_id"] == "1CT1"
    assert [i["instance_number"] for i in idx.instances] == [1, 2, 3]


def test_a_sop_instance_listed_twice_counts_once() -> None:
    ct = h.ct(2)
    p = payload(ct)
    p.instances.append(p.instances[0])
    assert index_series(p, datetime.now(UTC)).series["image_count"] == 2


def test_distinct_slice_thickness_and_species() -> None:
    ct = h.ct(3)
    ct[1].SliceThickness = "2.5"
    species = Dataset()
    species.CodeValue, species.CodeMeaning = "447612001", "Mus musculus"
    for ds in ct:
        ds.PatientSpeciesCodeSequence = Sequence([species])
    idx = index_series(payload(ct), datetime.now(UTC))
    assert idx.series["slice_thickness"] == "5.0, 2.5"
    assert (idx.patient["species_code"], idx.patient["species_description"]) == (
        "447612001", "Mus musculus",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("20040119", "20040119"), ("2004.01.19", "20040119"), ("20041319", None), ("", None)],
)
def test_dicom_dates(raw: str, expected: str | None) -> None:
    header = {"00080020": {"vr": "DA", "Value": [raw] if raw else []}}
    assert dicom_date(header, "StudyDate") == expected


def test_nbia_dates() -> None:
    assert nbia.nbia_date("20230807") == "08-07-2023"
    assert nbia.nbia_day(datetime(2023, 8, 7, 23, 59)) == "08-07-2023"
    assert nbia.parse_nbia_date("08-01-2023") == datetime(2023, 8, 1, tzinfo=UTC)
    assert nbia.parse_nbia_date("2023/08/01") is None


@pytest.mark.parametrize(
    ("doi", "url"),
    [
        ("10.7937/K9/TCIA.2016", "https://doi.org/10.7937/K9/TCIA.2016"),
        ("doi:10.7937/x", "https://doi.org/10.7937/x"),
        ("https://doi.org/10.7937/x", "https://doi.org/10.7937/x"),
        ("", None),
    ],
)
def test_data_description_uri(doi: str, url: str | None) -> None:
    assert CollectionInfo(id=1, name="X", doi=doi).doi_url == url


def test_series_uid_list_strips_like_nbia() -> None:
    assert nbia.series_uid_list(['"1.2.3", 1.2.4', "1.2.3", " x1.2.5;"]) == [
        "1.2.3", "1.2.4", "1.2.5",
    ]  # fmt: skip


def test_unknown_parameter_message() -> None:
    assert nbia.unknown_parameter(["Collection"], ("Collection", "format")) is None
    assert nbia.unknown_parameter(["Collection", "x"], ("Collection",)) == (
        "Invalid query parameter: 'x'. Allowed parameters are: [Collection]"
    )


def test_render_csv_quoting_and_empty_body() -> None:
    rows = [{"A": "x", "B": 1}, {"A": "y"}]
    assert formats.render(rows, ("A", "B"), "csv").body == '"A","B"\n"x","1"\n"y",""\n'
    assert formats.render([{"A": "x"}], ("A",), "csv").body == "A\nx\n"
    assert formats.render([], ("A",), "json").body == ""
    assert formats.render(rows, ("A", "B"), "json").body == b'[{"A":"x","B":1},{"A":"y"}]'


def _seg_header() -> dict:
    """A SEG's references: ReferencedSeriesSequence > ReferencedInstanceSequence."""
    ds = examples.ct.copy()
    del ds.PixelData
    inst = Dataset()
    inst.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    inst.ReferencedSOPInstanceUID = "1.2.3.4"
    ref = Dataset()
    ref.ReferencedInstanceSequence = Sequence([inst])
    ref.SeriesInstanceUID = "9.8.7"
    ds.ReferencedSeriesSequence = Sequence([ref])
    return h.header(ds)


def test_dicom_tags_seg_layout_for_get_seg_ref_series() -> None:
    rows = dicom_tag_rows(_seg_header())
    elements = [r["element"] for r in rows]
    start = elements.index("(0008,1115)")
    assert rows[start]["name"] == "Referenced Series Sequence"
    assert elements[start + 1 : start + 7] == [
        ">(0008,114A)", ">>(0008,1150)", ">>(0008,1155)", ">(0008,114A)", ">(0020,000E)",
        "(0008,1115)",
    ]  # fmt: skip
    assert rows[start + 4]["name"] == "End Referenced Instance Sequence"
    assert rows[start + 5]["data"] == "9.8.7"  # the End row is followed by the series UID
    assert rows[start + 6]["name"] == "End Referenced Series Sequence"
    assert "(7FE0,0010)" not in elements and "(FFFC,FFFC)" not in elements


def test_dicom_tags_rtstruct_nesting() -> None:
    series = Dataset()
    series.SeriesInstanceUID = "1.2.3"
    study = Dataset()
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.RTReferencedStudySequence = Sequence([study])
    ds = Dataset()
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    elements = [r["element"] for r in dicom_tag_rows(h.header(ds))]
    i = elements.index(">>(3006,0014)")
    assert elements[i + 1] == ">>>(0020,000E)"


def test_stored_series_json_equals_the_rendered_rows() -> None:
    """The getSeries JSON assembled from stored parts is byte for byte what rendering the
    row would give, for a collection with and without licence fields."""
    idx = index_series(payload(h.ct(2)), datetime.now(UTC))
    s = idx.series
    assert s["nbia_version"] == nbia.SERIES_JSON_VERSION
    for coll in (
        CollectionInfo(
            id=1, name="Demo-CT", licence_name="CC BY 4.0", licence_url="u", doi="10.1/x"
        ),
        CollectionInfo(id=1, name="Demo-CT", licence_name="CC BY 4.0"),
        CollectionInfo(id=1, name="Demo-CT"),
    ):
        parts = [(s["nbia_head"], nbia.licence_members(coll), s["nbia_tail"])] * 2
        expected = formats.render([nbia.series_row(s, coll)] * 2, nbia.SERIES_COLS).body
        assert nbia.series_json(parts) == expected
    assert nbia.series_json([]) == b""
