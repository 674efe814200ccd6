"""The DICOM JSON writer and reader are two halves of one contract (PS3.18 F.2): what deid
writes, catalog, qc and download read back — checked on real files."""

from __future__ import annotations

from typing import Any

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from services.common import dicom_json
from services.common.dicom_json import BULK_LIMIT, header_json

FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "rtdose.dcm",
    "waveform_ecg.dcm",
    "SC_rgb_small_odd.dcm",
    "JPEG2000.dcm",
    "MR_small_bigendian.dcm",
    "image_dfl.dcm",
    "rtstruct.dcm",
    "test-SR.dcm",
    "reportsi.dcm",
    "nested_priv_SQ.dcm",
    "liver_1frame.dcm",
]


def _read(name: str) -> Dataset:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom's test file {name} is missing"
    return pydicom.dcmread(path, force=True)


DATASETS = {name: _read(name) for name in FILES}


def _without_bulk(model: dict[str, Any]) -> dict[str, Any]:
    """pydicom's own JSON of a dataset without what the writer leaves out at every depth:
    pixel data, group lengths, binary values and values over the bulk limit."""
    out: dict[str, Any] = {}
    for key, entry in model.items():
        tag = int(key, 16)
        vr = entry.get("vr", "")
        if tag >> 16 == 0x7FE0 or tag & 0xFFFF == 0 or vr.startswith("O") or vr == "UN":
            continue
        if "InlineBinary" in entry or "BulkDataURI" in entry:
            continue
        if vr == "SQ":
            entry = {**entry, "Value": [_without_bulk(i) for i in entry.get("Value", [])]}
        elif len(repr(entry.get("Value", ""))) > BULK_LIMIT:
            continue
        out[key] = entry
    return out


def _pydicom_json(ds: Dataset) -> dict[str, Any]:
    return _without_bulk(ds.to_json_dict(BULK_LIMIT, lambda _: ""))


@pytest.mark.parametrize("name", FILES)
def test_the_writer_gives_pydicoms_json_model_without_bulk_data(name: str) -> None:
    ds = _read(name)  # fresh: the writer's fast path decodes raw (not yet parsed) elements
    header = header_json(ds)
    assert header, "a real header gives a non-empty JSON model"
    assert "7FE00010" not in header
    assert header == _pydicom_json(ds)


def _same(original: Dataset, back: Dataset, header: dict[str, Any], path: str = "") -> None:
    for key, entry in header.items():
        tag = int(key, 16)
        if entry.get("vr") == "SQ":
            items = entry.get("Value", [])
            assert len(back[tag].value) == len(original[tag].value) == len(items), path + key
            for i, item in enumerate(items):
                _same(original[tag].value[i], back[tag].value[i], item, f"{path}{key}[{i}].")
        else:
            assert back[tag].value == original[tag].value, path + key


@pytest.mark.parametrize("name", FILES)
def test_what_is_written_reads_back_as_the_same_values(name: str) -> None:
    ds = _read(name)
    header = header_json(ds)
    _same(ds, Dataset.from_json(header), header)


STRING_VRS = frozenset(
    ["AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UI", "UT", "IS", "DS"]
)


def _expected_text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    first = value[0] if isinstance(value, pydicom.multival.MultiValue) else value
    text = str(first).strip()
    return text or None


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_reader_gives_what_pydicom_reads(data: Any) -> None:
    name = data.draw(st.sampled_from(FILES))
    ds = DATASETS[name]
    keywords = [e.keyword for e in ds if e.keyword and e.VR in STRING_VRS and e.VM >= 1]
    if not keywords:
        return
    keyword = data.draw(st.sampled_from(keywords))
    header = header_json(ds)
    if dicom_json.tag(keyword) not in header:
        return
    got = dicom_json.text(header, keyword)
    expected = _expected_text(ds, keyword)
    if ds[keyword].VR in ("IS", "DS") and expected is not None:
        assert got is not None and float(got) == pytest.approx(float(expected))
    else:
        assert got == expected
    if ds[keyword].VR == "IS" and expected is not None:
        assert dicom_json.integer(header, keyword) == int(float(expected))


def test_reader_tolerates_absent_and_empty_attributes() -> None:
    header = {"00100010": {"vr": "PN"}, "00200013": {"vr": "IS", "Value": ["7"]}}
    assert dicom_json.text(header, "PatientName") is None
    assert dicom_json.text(header, "StudyDate") is None
    assert dicom_json.integer(header, "InstanceNumber") == 7
    assert dicom_json.int_at(header, "00200013") == 7
    assert dicom_json.int_at(header, "00200012") is None
