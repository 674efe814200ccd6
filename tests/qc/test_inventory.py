"""Tag inventories from de-identified headers: per device, every text value, every date,
every private element by creator, and elements the IOD does not define."""

from __future__ import annotations

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from services.common.dicom_json import header_json
from services.qc.inventory import diff, keyword_of_path, observe, tally


def _ct() -> Dataset:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    return pydicom.dcmread(path)


def _inventory(*datasets: Dataset) -> dict:
    counts = tally([])
    for ds in datasets:
        counts.update(tally(observe(header_json(ds), str(ds.SOPClassUID))))
    return dict(counts)


def test_values_are_grouped_by_device_and_counted_per_instance() -> None:
    a, b = _ct(), _ct()
    b.StudyDescription = "CHEST CT"
    inv = _inventory(a, b)
    device = "GE MEDICAL SYSTEMS / RHAPSODE / 05"
    seen = {k[5]: n for k, n in inv.items() if k[0] == device and k[2] == "00081030"}
    assert seen == {str(a.StudyDescription): 1, "CHEST CT": 1}


def test_text_at_every_depth_is_listed_by_path() -> None:
    ds = _ct()
    code = Dataset()
    code.CodeMeaning = "Left breast of J. Doe"
    code.CodeValue = "X1"
    ds.ProcedureCodeSequence = pydicom.Sequence([code])
    inv = _inventory(ds)
    assert any(
        k[1] == "text" and k[2] == "00081032[].00080104" and k[5] == "Left breast of J. Doe"
        for k in inv
    )
    assert keyword_of_path("00081032[].00080104") == "ProcedureCodeSequence > CodeMeaning"


def test_dates_private_elements_and_elements_outside_the_iod() -> None:
    ds = _ct()
    ds.add_new(0x00400555, "SQ", pydicom.Sequence())  # Acquisition Context: not a CT module's
    ds.add_new(0x00181030, "LO", "PROTOCOL X")  # Protocol Name: in the CT IOD
    ds.ReasonForStudy = "not part of a CT image"  # (0032,1030): Study IOD? not CT Image
    inv = _inventory(ds)
    sections = {k[1] for k in inv}
    assert {"text", "datetime", "private"} <= sections
    assert any(k[1] == "datetime" and k[2] == "00080020" and k[5] == ds.StudyDate for k in inv)
    assert any(k[1] == "private" and k[4] == "GEMS_ACQU_01" and k[2] == "0019xx02" for k in inv)
    outside = {k[2] for k in inv if k[1] == "not_in_iod"}
    assert "00321030" in outside
    assert "00181030" not in outside


def test_diff_shows_what_changed_between_two_inventories() -> None:
    a = _inventory(_ct())
    changed = _ct()
    changed.StudyDescription = "NEW"
    b = _inventory(changed, _ct())
    changes = diff(a, b)
    keys = {(c.key[2], c.key[5]): (c.before, c.after) for c in changes}
    assert keys[("00081030", "NEW")] == (0, 1)
    assert diff(a, a) == []
