"""Intake's rules on real DICOM files: what enters quarantine, what is held and why."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import ImplicitVRLittleEndian

from services.common.contracts import COLLECTION_NAME
from services.common.events import Licence
from services.intake import domain
from services.intake.domain import Accepted, Held
from tests.intake.helpers import ct, ct_dataset, encode, mr, sample, without


@pytest.mark.parametrize(
    ("data", "sop", "patient", "modality"),
    [
        (ct(), "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322", "1CT1", "CT"),
        (mr(), "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457", "4MR1", "MR"),
        (sample("JPEG2000.dcm"), "1.3.6.1.4.1.5962.1.1.8.1.3.20040826185059.5457", "8NM1", "NM"),
        (sample("MR_small_bigendian.dcm"), "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457",
         "4MR1", "MR"),
        (sample("rtplan.dcm"), "1.2.777.777.77.7.7777.7777.20030903150023", "id00001", "RTPLAN"),
    ],
)  # fmt: skip
def test_real_files_are_accepted_with_their_identifiers(
    data: bytes, sop: str, patient: str, modality: str
) -> None:
    verdict = domain.inspect(data)
    assert isinstance(verdict, Accepted)
    assert (verdict.sop_instance_uid, verdict.patient_id, verdict.modality) == (
        sop,
        patient,
        modality,
    )
    assert verdict.study_instance_uid and verdict.series_instance_uid


def test_implicit_vr_file_is_accepted() -> None:
    ds = ct_dataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    assert isinstance(domain.inspect(encode(ds)), Accepted)


def test_non_dicom_is_held_with_the_part10_reason() -> None:
    for data in (b"", b"hello world", b"%PDF-1.7\n" + bytes(500), ct()[132:]):
        assert domain.inspect(data) == Held("not_part10", domain.NOT_PART10)
    assert domain.NOT_PART10 == "not a DICOM Part 10 file (no DICM prefix at byte 128)"


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.99])
def test_a_file_cut_in_its_pixel_data_is_held_as_truncated(cut: float) -> None:
    data = ct()
    verdict = domain.inspect(data[: int(len(data) * cut)])
    assert isinstance(verdict, Held)
    assert verdict.reason.startswith("truncated or unreadable DICOM: ")
    assert "(7FE0,0010) PixelData" in verdict.reason


def test_a_file_cut_in_its_header_or_meta_is_held_as_truncated() -> None:
    for cut in (200, 300, 1000, 3000):
        verdict = domain.inspect(ct()[:cut])
        assert isinstance(verdict, Held), cut
        assert verdict.code == "truncated", (cut, verdict)


def test_a_file_missing_its_last_byte_is_held() -> None:
    for data in (ct(), mr(), sample("rtplan.dcm")):
        assert isinstance(domain.inspect(data[:-1]), Held)


def test_encapsulated_pixel_data_without_its_delimiter_is_held() -> None:
    data = sample("JPEG2000.dcm")  # ends with the (FFFE,E0DD) sequence delimiter
    verdict = domain.inspect(data[:-8])
    assert isinstance(verdict, Held)
    assert verdict.reason.endswith("inside (7FE0,0010) PixelData, before its delimiter")
    verdict = domain.inspect(data[:-3])
    assert isinstance(verdict, Held)
    assert verdict.reason.endswith("inside the header of a data element")
    verdict = domain.inspect(data[:-200])
    assert isinstance(verdict, Held)
    assert "inside (FFFE,E000) Item" in verdict.reason


def test_an_image_header_without_its_pixels_is_held() -> None:
    ds = ct_dataset()
    del ds.PixelData
    verdict = domain.inspect(encode(ds))
    assert isinstance(verdict, Held)
    assert verdict.reason.startswith("missing PixelData (7FE0,0010)")


@pytest.mark.parametrize(
    ("keyword", "reason"),
    [
        ("SOPInstanceUID", "missing SOPInstanceUID (0008,0018)"),
        ("StudyInstanceUID", "missing StudyInstanceUID (0020,000D)"),
        ("SeriesInstanceUID", "missing SeriesInstanceUID (0020,000E)"),
        ("PatientID", "missing PatientID (0010,0020)"),
    ],
)
def test_missing_identifiers_are_held_naming_the_attribute(keyword: str, reason: str) -> None:
    assert domain.inspect(without(keyword)) == Held("missing_attribute", reason)


def test_an_empty_patient_id_counts_as_missing() -> None:
    ds = ct_dataset()
    ds.PatientID = ""
    del ds.SOPInstanceUID
    assert domain.inspect(encode(ds)) == Held(
        "missing_attribute", "missing SOPInstanceUID (0008,0018) and PatientID (0010,0020)"
    )


def test_an_overlong_uid_is_held() -> None:
    ds = ct_dataset()
    with pytest.warns(UserWarning):  # pydicom warns too; intake holds it
        ds.SeriesInstanceUID = "1.2." + "3" * 70
    verdict = domain.inspect(encode(ds))
    assert isinstance(verdict, Held)
    assert verdict.code == "invalid_value"
    assert verdict.reason.startswith(
        "(0020,000E) SeriesInstanceUID does not hold a valid UI value (it must be a UID of "
        "digits and dots, at most 64 characters)"
    )


def test_garbage_after_the_prefix_is_held_not_raised() -> None:
    verdict = domain.inspect(bytes(128) + b"DICM" + b"\xff" * 300)
    assert isinstance(verdict, Held)
    assert verdict.reason.startswith("truncated or unreadable DICOM: ")


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=600))
def test_inspect_never_raises_and_never_accepts_noise(noise: bytes) -> None:
    for data in (noise, bytes(128) + b"DICM" + noise, ct()[:400] + noise):
        assert isinstance(domain.inspect(data), Held)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=6288, max_value=39067))
def test_any_cut_from_the_pixel_data_header_on_is_held(cut: int) -> None:
    # CT_small: (7FE0,0010) starts at byte 6288 and its value ends at 39068, where only
    # the optional trailing padding follows (a cut there leaves a whole file).
    assert isinstance(domain.inspect(ct()[:cut]), Held)
    assert isinstance(domain.inspect(ct()[:39068]), Accepted)


def test_instance_id_is_stable_keyed_and_short() -> None:
    a = domain.instance_id(b"secret", "Demo-CT", "P1", "1.2.3")
    assert a == domain.instance_id(b"secret", "Demo-CT", "P1", "1.2.3")
    assert len(a) == 32 and int(a, 16) >= 0
    others = {
        domain.instance_id(b"other", "Demo-CT", "P1", "1.2.3"),
        domain.instance_id(b"secret", "Other", "P1", "1.2.3"),
        domain.instance_id(b"secret", "Demo-CT", "P2", "1.2.3"),
        domain.instance_id(b"secret", "Demo-CT", "P1", "1.2.4"),
    }
    assert a not in others and len(others) == 4
    assert "P1" not in domain.quarantine_key("Demo-CT", a)
    assert domain.quarantine_key("Demo-CT", a) == f"Demo-CT/{a}.dcm"


def test_licences_resolve_and_unknown_ones_name_the_known() -> None:
    lic = domain.resolve_licence("TCIA-Restricted")
    assert (lic.name, lic.url) == (
        "TCIA Restricted License",
        "https://www.cancerimagingarchive.net/data-usage-policies-and-restrictions/",
    )
    assert domain.resolve_licence("CC-BY-4.0").name == "CC BY 4.0"
    with pytest.raises(domain.UnknownLicence) as e:
        domain.resolve_licence("cc-by-4.0")
    assert "CC-BY-4.0" in str(e.value) and "NCTN-Data-Archive" in str(e.value)


def test_announced_licences_come_first_and_deleted_ones_are_refused() -> None:
    dua = Licence(id="Site-DUA-1", name="Site DUA", url="https://dua.example.org/1")
    auth_cc = Licence(id="CC-BY-4.0", name="CC BY 4.0 (as renamed in auth)")
    announced: dict[str, Licence | None] = {
        "Site-DUA-1": dua,
        "CC-BY-4.0": auth_cc,
        "CC-BY-3.0": None,  # deleted in auth
    }
    assert domain.resolve_licence("Site-DUA-1", announced) == dua
    assert domain.resolve_licence("CC-BY-4.0", announced) == auth_cc
    assert domain.resolve_licence("CC0-1.0", announced) == domain.LICENCES["CC0-1.0"]
    with pytest.raises(domain.UnknownLicence) as deleted:
        domain.resolve_licence("CC-BY-3.0", announced)
    assert str(deleted.value).startswith("licence 'CC-BY-3.0' has been deleted")
    with pytest.raises(domain.UnknownLicence) as unknown:
        domain.resolve_licence("site-dua-1", announced)
    known = str(unknown.value).partition("choose one of ")[2].split(", ")
    assert known == [
        "CC-BY-4.0", "CC-BY-NC-4.0", "CC-BY-NC-3.0", "CC0-1.0", "TCIA-Restricted",
        "NCTN-Data-Archive", "Site-DUA-1",
    ]  # fmt: skip
    assert domain.known_licences() == list(domain.LICENCES)


def test_collection_names() -> None:
    ok = ["Demo-CT", "a", "LIDC_IDRI", "x" * 64]
    bad = ["", "x" * 65, "with space", "slash/es", "dot.ted", "ümlaut"]
    assert all(COLLECTION_NAME.fullmatch(n) for n in ok)
    assert not any(COLLECTION_NAME.fullmatch(n) for n in bad)


def test_zip_entries_skipped() -> None:
    assert domain.skip_zip_entry("series/", True)
    assert domain.skip_zip_entry("__MACOSX/series/._IM1", False)
    assert not domain.skip_zip_entry("series/IM1", False)


def test_deflated_file_is_read() -> None:
    data = sample("image_dfl.dcm")  # deflated explicit VR; this sample has no PatientID
    assert domain.inspect(data) == Held("missing_attribute", "missing PatientID (0010,0020)")
    cut = domain.inspect(data[:2000])
    assert isinstance(cut, Held) and cut.code == "unreadable"
