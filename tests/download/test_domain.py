"""NBIA naming and text rules of a series download."""

from __future__ import annotations

import pytest

from services.common.dicom_json import int_at
from services.download.domain import (
    Image,
    Terms,
    access_denied,
    citation_text,
    default_file_names,
    licence_text,
    md5_csv,
    nbia_order,
    new_file_names,
    unknown_parameter,
)
from services.download.manifest import parse_manifest


def im(inst: int | None, acq: int | None = 1, sop: str = "") -> Image:
    return Image(sop or f"1.{inst}", "k", 1, "h", inst, acq)


def test_licence_opens_with_nbias_sentence_with_not_specified_for_gaps() -> None:
    text = licence_text(Terms("Demo-CT", "CC BY 4.0", "https://x/by/4.0/"))
    assert text.splitlines()[0] == (
        "License Information. The Demo-CT collection is distributed under the CC BY 4.0 at "
        "https://x/by/4.0/ By downloading the data, you agree to abide by terms of this license."
    )
    assert "Data usage policy: Not Specified" in text
    assert licence_text(Terms("C")).splitlines()[0] == (
        "License Information. The C collection is distributed under the Not Specified at "
        "Not Specified By downloading the data, you agree to abide by terms of this license."
    )


def test_citation_gives_the_doi_as_a_link() -> None:
    text = citation_text(Terms("C", citation="Someone (2026). C.", doi="10.1/abc"))
    assert (
        text
        == "Please cite these data as:\n\nSomeone (2026). C.\n\nDOI: https://doi.org/10.1/abc\n"
    )
    assert "DOI" not in citation_text(Terms("C"))
    assert "The C collection." in citation_text(Terms("C"))


def test_access_denied_message_is_nbias() -> None:
    assert access_denied("1.2.3") == (
        "The user has not been granted the access to image with given "
        "SeriesInstanceUID,1.2.3. Please contact System Admin to resolve this issue."
    )
    assert unknown_parameter("X", ["A", "B"]) == (
        "Invalid query parameter: 'X'. Allowed parameters are: [A, B]"
    )


def test_order_is_by_instance_number_with_missing_numbers_first() -> None:
    images = [im(10), im(2), im(None, sop="9.9"), im(1)]
    assert [i.instance_number for i in nbia_order(images)] == [None, 1, 2, 10]


def test_default_names_are_eight_digit_indexes() -> None:
    assert default_file_names(3) == ["00000001.dcm", "00000002.dcm", "00000003.dcm"]


def test_new_names_pad_each_index_to_the_digits_of_its_total() -> None:
    ordered = nbia_order([im(i, acq=1 if i <= 6 else 2) for i in range(1, 13)])
    assert new_file_names(ordered) == [f"1-{i:02d}.dcm" for i in range(1, 7)] + [
        f"2-{i:02d}.dcm" for i in range(1, 7)
    ]


def test_new_names_for_a_small_single_acquisition_series() -> None:
    assert new_file_names(nbia_order([im(3), im(1), im(2)])) == ["1-1.dcm", "1-2.dcm", "1-3.dcm"]


def test_new_names_stay_unique_without_numbers_or_with_repeated_ones() -> None:
    names = new_file_names([im(None, None, "a"), im(None, None, "b"), im(5, None), im(5, None)])
    assert names == ["1-1.dcm", "1-2.dcm", "1-3.dcm", "1-4.dcm"]
    assert new_file_names([]) == []


def test_md5_csv_has_header_and_unquoted_rows() -> None:
    assert md5_csv([("1-1.dcm", "ab"), ("1-2.dcm", "cd")]) == (
        "Filename,MD5Hash\n1-1.dcm,ab\n1-2.dcm,cd\n"
    )


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ({"vr": "IS", "Value": [7]}, 7),
        ({"vr": "IS", "Value": ["12 "]}, 12),
        ({"vr": "IS"}, None),
        ({"vr": "IS", "Value": ["x"]}, None),
    ],
)
def test_header_int_reads_dicom_json_is_values(element: dict, value: int | None) -> None:
    assert int_at({"00200013": element}, "00200013") == value
    assert int_at({}, "00200013") is None


def test_manifests_with_or_without_nbias_header_are_read() -> None:
    nbia = "downloadServerUrl=x\nincludeAnnotation=true\nnoOfrRetry=4\ndatabasketId=m.tcia\n"
    nbia += "manifestVersion=3.0\nListOfSeriesToDownload=\n1.2.3\n1.2.4\r\n\n1.2.3\n"
    assert parse_manifest(nbia) == ["1.2.3", "1.2.4"]
    assert parse_manifest("# my series\n1.2.3\n\nkey=value\n 1.2.5 \n") == ["1.2.3", "1.2.5"]
    with pytest.raises(ValueError, match="not a SeriesInstanceUID"):
        parse_manifest("1.2.3\nhello world\n")
