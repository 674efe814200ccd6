"""Leak suite: PHI planted in every class of the reference's leak table must not survive.

Every planted string is searched for in the output BYTES (preamble, file meta, every element
at every depth), in upper, lower and original case.
"""

from __future__ import annotations

import io

import pydicom
import pytest
from deid_factories import KEYS, OFFSET, PSEUDONYM, Planted, phi_ct, run

from services.deid.engine import Profile, default_profile, new_uid

STRICT = Profile(options=frozenset())  # the Basic Profile alone
# Kept by design under the default (TCIA) profile: device identity, and descriptor text that
# is not this patient's own identifier (Clean Descriptors keeps it for review).
DEFAULT_KEPT = {"WALLABYCT01", "SN-4417-KANGA", "HISTORY-WALLABY smoker"}


def leaks(data: bytes, planted: list[str]) -> list[str]:
    found = []
    for value in planted:
        for variant in {value, value.upper(), value.lower()}:
            if variant.encode("latin-1") in data:
                found.append(value)
                break
    return found


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_nothing_planted_survives_the_basic_profile(implicit: bool) -> None:
    case = phi_ct(implicit=implicit)
    result = run(case.raw, STRICT)
    assert result.data is not None
    assert leaks(result.data, case.phi) == []


def test_nothing_planted_survives_the_default_profile(planted: Planted) -> None:
    result = run(planted.raw, default_profile())
    assert result.data is not None
    assert leaks(result.data, [p for p in planted.phi if p not in DEFAULT_KEPT]) == []


def test_the_leak_check_itself_finds_planted_values(planted: Planted) -> None:
    # Guard against a vacuous suite: every planted value is present in the input bytes.
    assert leaks(planted.raw, planted.phi) == planted.phi


def test_preamble_zeroed_and_file_meta_rebuilt(planted: Planted) -> None:
    result = run(planted.raw)
    assert result.data is not None
    assert result.data[:128] == b"\x00" * 128
    ds = pydicom.dcmread(io.BytesIO(result.data))
    meta = ds.file_meta
    assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert "SourceApplicationEntityTitle" not in meta
    assert "PrivateInformation" not in meta
    assert meta.ImplementationClassUID == pydicom.uid.PYDICOM_IMPLEMENTATION_UID


def test_identity_replaced_by_the_pseudonym(planted: Planted) -> None:
    result = run(planted.raw)
    ds = pydicom.dcmread(io.BytesIO(result.data or b""))
    assert ds.PatientName == PSEUDONYM
    assert ds.PatientID == PSEUDONYM
    assert ds.PatientBirthDate == ""  # Retain Patient Characteristics does not keep it
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.PatientAge == "090Y"  # over 89 is capped
    assert result.original["PatientID"] == "MRN77123459"
    assert result.original["PatientName"] == "ZEBRAFISH^QUINTUS^MAXIMILIAN"
    assert result.deidentified["PatientID"] == PSEUDONYM


def test_uids_consistent_across_files_references_and_meta() -> None:
    a = phi_ct(sop_uid="1.2.3.4.5.6.7.777.3.1", referenced_uid="1.2.3.4.5.6.7.777.3.2")
    b = phi_ct(sop_uid="1.2.3.4.5.6.7.777.3.2", referenced_uid="1.2.3.4.5.6.7.777.3.1")
    ra, rb = run(a.raw), run(b.raw)
    da = pydicom.dcmread(io.BytesIO(ra.data or b""))
    db = pydicom.dcmread(io.BytesIO(rb.data or b""))
    assert da.StudyInstanceUID == db.StudyInstanceUID
    assert da.SeriesInstanceUID == db.SeriesInstanceUID
    assert da.FrameOfReferenceUID == db.FrameOfReferenceUID
    assert da.SOPInstanceUID != db.SOPInstanceUID
    # a's nested reference to b is exactly b's new SOPInstanceUID, and vice versa.
    ref_a = da.PerFrameFunctionalGroupsSequence[0].ReferencedImageSequence[0]
    ref_b = db.PerFrameFunctionalGroupsSequence[0].ReferencedImageSequence[0]
    assert ref_a.ReferencedSOPInstanceUID == db.SOPInstanceUID
    assert ref_b.ReferencedSOPInstanceUID == da.SOPInstanceUID
    assert da.SOPInstanceUID == new_uid(KEYS, "1.2.3.4.5.6.7.777.3.1")
    assert ra.uid_map["1.2.3.4.5.6.7.777.3.1"] == da.SOPInstanceUID
    assert ra.uid_map["1.2.3.4.5.6.7.777.3.2"] == db.SOPInstanceUID
    # Every UID that changed is in the map, including nested and private ones.
    assert "1.2.3.4.5.6.7.777.9.3" in ra.uid_map  # SR UIDREF at depth 3
    assert "1.2.3.4.5.6.7.777.9.4" in ra.uid_map  # GEMS_PETD_01 Exam ID
    assert da.SOPClassUID == pydicom.uid.CTImageStorage  # well-known UIDs are kept


def test_dates_shifted_with_intervals_kept(planted: Planted) -> None:
    result = run(planted.raw)
    ds = pydicom.dcmread(io.BytesIO(result.data or b""))
    assert ds.StudyDate == "20181101"  # 2020-03-15 - 500 days
    assert ds.InstanceCreationDate == "20181102"  # one day later, as in the input
    assert ds.AcquisitionDateTime == "20181101101733.123456"  # precision kept, zone dropped
    assert "TimezoneOffsetFromUTC" not in ds
    assert ds.StudyTime == "101500"  # whole-day shift keeps times
    radio = ds.RadiopharmaceuticalInformationSequence[0]
    assert radio.RadiopharmaceuticalStartDateTime == "20181101093000"
    assert radio.RadiopharmaceuticalStartTime == "093000"
    frame = ds.PerFrameFunctionalGroupsSequence[0].FrameContentSequence[0]
    assert frame.FrameAcquisitionDateTime == "20181101101800"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    petd = ds.private_block(0x0009, "GEMS_PETD_01")
    assert ds[petd.get_tag(0x05)].value == "19491102120000"  # private DT shifted too
    actions = {a.path: a.action for a in result.audit}
    assert actions["(0008,0020)"] == "shifted"


def test_clean_pixel_data_byte_identical(planted: Planted) -> None:
    result = run(planted.raw)
    ds = pydicom.dcmread(io.BytesIO(result.data or b""))
    assert ds.PixelData == planted.pixel_bytes


def test_descriptors_keep_text_but_lose_own_identifiers(planted: Planted) -> None:
    ds = pydicom.dcmread(io.BytesIO(run(planted.raw).data or b""))
    assert ds.StudyDescription == "CT CHEST"
    assert ds.SeriesDescription == "axial"
    assert ds.ProtocolName == "chest protocol"
    assert ds.ImageComments == "Patient seen, born"
    acqu = ds.private_block(0x0019, "GEMS_ACQU_01")
    assert ds[acqu.get_tag(0x18)].value == "S"  # kept private text is scrubbed too


def test_sequences_removed_or_cleaned_at_depth(planted: Planted) -> None:
    result = run(planted.raw)
    ds = pydicom.dcmread(io.BytesIO(result.data or b""))
    for keyword in (
        "OtherPatientIDsSequence",
        "OriginalAttributesSequence",
        "IconImageSequence",
        "DigitalSignaturesSequence",
        "DataSetTrailingPadding",
    ):
        assert keyword not in ds, keyword
    # A reference is kept and re-rooted; what else its item holds gets its own action.
    patient_ref = ds.ReferencedPatientSequence[0]
    assert patient_ref.ReferencedSOPInstanceUID == new_uid(KEYS, "1.2.3.4.5.6.7.777.9.1")
    assert patient_ref.PatientName == ""
    deep = ds.ContentSequence[0].ContentSequence[0].ContentSequence
    assert deep[1].PersonName == "ANONYMIZED"
    assert deep[2].Date == "20181103"
    assert new_uid(KEYS, "1.2.3.4.5.6.7.777.9.3") == deep[3].UID
    paths = {a.path for a in result.audit}
    assert "(0040,A730)[0](0040,A730)[0](0040,A730)[1](0040,A123)" in paths


def test_overlays_curves_unknown_text_and_private_removed(planted: Planted) -> None:
    ds = pydicom.dcmread(io.BytesIO(run(planted.raw).data or b""))
    groups = {e.tag.group for e in ds}
    assert not any(0x5000 <= g <= 0x501E or 0x6000 <= g <= 0x601E for g in groups)
    for tag in (0x00181161, 0x0018FFF0, 0x0020FFF2):
        assert tag not in ds
    creators = {str(e.value) for e in ds if e.tag.group & 1 and e.tag.element < 0x100}
    assert "ACME PRIVATE 1" not in creators
    assert "MITRA LINKED ATTRIBUTES 1.0" not in creators
    assert "SIEMENS CSA HEADER" not in creators
    assert "GEMS_IDEN_01" in creators  # its safe element (Full Fidelity) is kept


def test_audit_never_carries_phi(planted: Planted) -> None:
    result = run(planted.raw)
    text = repr(result.audit)
    assert leaks(text.encode(), planted.phi) == []
    assert {a.action for a in result.audit} <= {
        "removed",
        "replaced",
        "shifted",
        "emptied",
        "dummy",
        "kept",
        "cleaned",
        "uid",
    }


def test_header_json_has_no_bulk_data_and_no_phi(planted: Planted) -> None:
    result = run(planted.raw)
    assert "7FE00010" not in result.header_json
    assert result.header_json["00100020"]["Value"] == [PSEUDONYM]
    phi = [p for p in planted.phi if p not in DEFAULT_KEPT]
    assert leaks(repr(result.header_json).encode(), phi) == []
    for entry in result.header_json.values():
        assert "InlineBinary" not in entry and "BulkDataURI" not in entry


def test_offset_and_pseudonym_come_from_the_request(planted: Planted) -> None:
    other = run(planted.raw, offset=OFFSET - 1, pseudonym="OTHER-1")
    ds = pydicom.dcmread(io.BytesIO(other.data or b""))
    assert ds.StudyDate == "20181031"
    assert ds.PatientID == "OTHER-1"
