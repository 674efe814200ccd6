"""The residual-PHI scan finds the original record's own identifiers wherever they survive,
names only where and what kind, and finds nothing in a clean de-identified output."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.dataset import Dataset

from services.deid.engine import default_profile
from services.deid.phiscan import Finding, date_forms, fold, identifiers_of, scan
from tests.deid.engine.deid_factories import add_private, phi_ct, run


def _read(raw: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(raw), force=True)


@pytest.fixture
def original() -> Dataset:
    return _read(phi_ct().raw)


@pytest.fixture
def clean(original: Dataset) -> Dataset:
    buf = io.BytesIO()
    original.save_as(buf)
    result = run(buf.getvalue())
    assert result.data is not None
    return _read(result.data)


def _kinds(findings: list[Finding]) -> set[str]:
    return {f.kind for f in findings}


RETAINED = default_profile().options


def test_a_clean_deidentified_instance_has_no_findings(original: Dataset, clean: Dataset) -> None:
    ids = identifiers_of(original, RETAINED)
    assert scan(clean, ids, key="TEST/2.25.1/2.25.2/2.25.3.dcm") == []


def test_what_the_profile_does_not_retain_is_looked_for(original: Dataset, clean: Dataset) -> None:
    # the default profile keeps device identity; without that option the kept station
    # name and device serial number are findings
    found = scan(clean, identifiers_of(original))
    assert {(f.path, f.kind) for f in found} >= {("00081010", "station"), ("00181000", "id")}


def test_identifiers_planted_back_are_found_with_where_and_what_kind(
    original: Dataset, clean: Dataset
) -> None:
    # the patient's name, in another case and with an accent, inside kept free text
    clean.ImageComments = "follow-up for Zébrafish, see prior"
    # a date of birth written the American way inside a sequence item
    item = Dataset()
    item.TextValue = "born 03/17/1951"
    clean.ContentSequence = pydicom.Sequence([item])
    # the original study UID hidden in a private binary element of a safe-looking block
    add_private(clean, 0x0011, "ACME 1.0", 0x10, "OB", b"ref=" + original.StudyInstanceUID.encode())
    # the accession number in the object key
    key = f"TEST/{original.AccessionNumber}/x.dcm"
    found = scan(clean, identifiers_of(original, RETAINED), key=key)
    assert Finding("00204000", "name") in found
    assert Finding("0040A730[0].0040A160", "date") in found
    assert any(f.kind == "uid" and f.path.startswith("0011") for f in found)
    assert Finding("object key", "id") in found
    # a finding carries no value of the record
    for f in found:
        for secret in ("ZEBRAFISH", "19510317", original.StudyInstanceUID, "ACC99887766"):
            assert fold(secret) not in fold(f.path + f.kind)


def test_retained_on_purpose_is_not_a_finding(original: Dataset, clean: Dataset) -> None:
    clean.StudyDate = original.StudyDate if "StudyDate" in original else "20200101"
    clean.ImageComments = f"study of {original.StudyDate if 'StudyDate' in original else ''}"
    assert "date" not in _kinds(
        scan(clean, identifiers_of(original, {*RETAINED, "retain_long_full_dates"}))
    )


def test_short_name_parts_and_words_inside_longer_words_are_not_findings() -> None:
    original = Dataset()
    original.PatientName = "LI^ANN"
    clean = Dataset()
    clean.StudyDescription = "ANNEX CT of LIVER"
    assert scan(clean, identifiers_of(original)) == []
    clean.StudyDescription = "CT for ann"
    assert _kinds(scan(clean, identifiers_of(original))) == {"name"}


def test_every_written_form_of_a_date_is_recognised() -> None:
    forms = date_forms("19510317")
    for written in ("19510317", "03/17/1951", "17.03.1951", "1951-03-17", "17/03/1951"):
        assert written in forms
    original = Dataset()
    original.PatientBirthDate = "19510317"
    for written in forms:
        clean = Dataset()
        clean.AdditionalPatientHistory = f"dob {written}."
        assert _kinds(scan(clean, identifiers_of(original))) == {"date"}, written


def test_the_pseudonym_collection_and_vendor_names_are_not_findings() -> None:
    original = Dataset()
    original.PatientName = "SYNTHETIC^DEMO"
    original.InstitutionName = "TOSHIBA"
    original.Manufacturer = "TOSHIBA_MEC"
    clean = Dataset()
    clean.PatientID = "IMARC-Demo-0001"
    clean.Manufacturer = "TOSHIBA_MEC"
    key = "IMARC-Demo/2.25.1/2.25.2/2.25.3.dcm"
    allowed = ("IMARC-Demo-0001", "IMARC-Demo")
    assert scan(clean, identifiers_of(original), key=key, allowed=allowed) == []
    # the same words anywhere else still are
    clean.ImageComments = "demo scan at Toshiba"
    found = scan(clean, identifiers_of(original), key=key, allowed=allowed)
    assert found == [Finding("00204000", "institution"), Finding("00204000", "name")]
