"""Profile options change Table E.1-1 actions as the option columns say."""

from __future__ import annotations

import io

import pydicom
import pytest
from deid_factories import KEYS, Planted, base_ct, phi_ct, run, to_bytes
from pydantic import ValidationError

from services.deid.engine import (
    OPTIONS,
    DeidentificationError,
    Profile,
    default_profile,
    new_uid,
)
from services.deid.engine.iod import resolve
from services.deid.engine.rules import compile_profile


def out(planted: Planted, *options: str) -> pydicom.Dataset:
    result = run(planted.raw, Profile(options=frozenset(options)))
    return pydicom.dcmread(io.BytesIO(result.data or b""))


def test_retain_uids_keeps_uids(planted: Planted) -> None:
    ds = out(planted, "retain_uids")
    assert ds.SOPInstanceUID == planted.uids["sop"]
    assert ds.StudyInstanceUID == planted.uids["study"]
    assert ds.file_meta.MediaStorageSOPInstanceUID == planted.uids["sop"]
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == planted.uids["ref"]


def test_without_retain_uids_every_instance_uid_changes(planted: Planted) -> None:
    ds = out(planted)
    assert ds.SOPInstanceUID != planted.uids["sop"]
    assert ds.FrameOfReferenceUID != planted.uids["for"]
    # X/Z/U* on a reference: kept, pointing at the target's new UID (never removed).
    ref = ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID
    assert ref == new_uid(KEYS, planted.uids["ref"])


def test_retain_full_dates_keeps_dates(planted: Planted) -> None:
    ds = out(planted, "retain_long_full_dates")
    assert ds.StudyDate == "20200315"
    assert ds.AcquisitionDateTime == "20200315101733.123456+0100"
    assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert ds.PatientBirthDate == ""  # not a longitudinal date


def test_no_date_option_removes_or_empties_dates(planted: Planted) -> None:
    ds = out(planted)
    assert ds.StudyDate == ""  # Z
    assert "SeriesDate" not in ds  # X/D, Type 3
    assert "AcquisitionDateTime" not in ds  # X/Z/D, Type 3
    assert ds.ContentDate == ""  # Z/D, Type 2 in General Image
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"


def test_retain_device_identity(planted: Planted) -> None:
    kept = out(planted, "retain_device_identity")
    assert kept.DeviceSerialNumber == "SN-4417-KANGA"
    assert kept.StationName == "WALLABYCT01"
    basic = out(planted)
    assert "DeviceSerialNumber" not in basic  # X/Z/D, Type 3 in General Equipment
    assert "StationName" not in basic


def test_retain_institution_identity(planted: Planted) -> None:
    assert out(planted, "retain_institution_identity").InstitutionName == (
        "ST WALLABY GENERAL HOSPITAL"
    )
    assert "InstitutionName" not in out(planted)


def test_retain_patient_characteristics(planted: Planted) -> None:
    kept = out(planted, "retain_patient_characteristics")
    assert kept.PatientSex == "F"
    assert kept.PatientAge == "090Y"
    basic = out(planted)
    assert basic.PatientSex == ""
    assert "PatientAge" not in basic


def test_clean_descriptors_versus_basic(planted: Planted) -> None:
    assert out(planted, "clean_descriptors").StudyDescription == "CT CHEST"
    basic = out(planted)
    assert "StudyDescription" not in basic
    assert "ImageComments" not in basic


def test_clean_structured_content_keeps_scrubbed_text(planted: Planted) -> None:
    ds = out(planted, "clean_structured_content")
    deep = ds.ContentSequence[0].ContentSequence[0].ContentSequence
    assert deep[0].TextValue == "Seen by family TEXTVALUE-WALLABY"
    basic = out(planted)
    assert basic.ContentSequence[0].ContentSequence[0].ContentSequence[0].TextValue == (
        "ANONYMIZED"
    )


def test_clean_graphics_keeps_overlay_data_not_comments(planted: Planted) -> None:
    ds = out(planted, "clean_graphics")
    assert 0x60003000 in ds
    for tag in (0x60004000, 0x60001500, 0x60000022, 0x50002500):
        assert tag not in ds
    assert 0x60003000 not in out(planted)


def test_retain_safe_private(planted: Planted) -> None:
    kept = out(planted, "retain_safe_private")
    assert kept.private_block(0x0009, "GEMS_IDEN_01") is not None
    basic = out(planted)
    assert not any(e.tag.group & 1 for e in basic)


def test_private_matched_by_creator_not_absolute_tag() -> None:
    ds = base_ct()
    # GEMS_ACQU_01 in block 0x12 instead of the usual 0x10: still recognised.
    ds.add_new(0x00190010, "LO", "ACME UNKNOWN")
    ds.add_new(0x00191002, "SL", 1)
    ds.add_new(0x00190012, "LO", "GEMS_ACQU_01")
    ds.add_new(0x00191202, "SL", 912)
    result = run(to_bytes(ds), Profile(options=frozenset({"retain_safe_private"})))
    out_ds = pydicom.dcmread(io.BytesIO(result.data or b""))
    assert 0x00191202 in out_ds and out_ds[0x00191202].value == 912
    assert 0x00191002 not in out_ds and 0x00190010 not in out_ds


def test_keep_tags_allow_list() -> None:
    ds = base_ct()
    ds.add_new(0x00181161, "LO", "WEDGE FILTER")  # TypeOfFilters: unlisted LO
    raw = to_bytes(ds)
    assert 0x00181161 not in pydicom.dcmread(io.BytesIO(run(raw).data or b""))
    profile = Profile(options=default_profile().options, keep_tags=("TypeOfFilters",))
    kept = pydicom.dcmread(io.BytesIO(run(raw, profile).data or b""))
    assert kept[0x00181161].value == "WEDGE FILTER"


def test_method_codes_and_text(planted: Planted) -> None:
    profile = default_profile()
    ds = pydicom.dcmread(io.BytesIO(run(planted.raw, profile).data or b""))
    codes = [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113105", "113107", "113108", "113109", "113111"]
    assert all(i.CodingSchemeDesignator == "DCM" for i in ds.DeidentificationMethodCodeSequence)
    method = list(ds.DeidentificationMethod)
    assert method[0].startswith("imarc")
    assert "2024b" in method[1]
    assert profile.digest() in method
    assert f"profile v{profile.version}" in method


def test_profile_round_trip_and_digest() -> None:
    profile = default_profile()
    assert Profile.from_json(profile.to_json()) == profile
    assert Profile.from_json(profile.to_json()).digest() == profile.digest()
    bumped = Profile(options=profile.options, version=2)
    assert bumped.digest() != profile.digest()
    assert default_profile().options == {
        "retain_safe_private",
        "retain_long_modified_dates",
        "retain_patient_characteristics",
        "retain_device_identity",
        "clean_descriptors",
    }
    assert {"retain_uids", "clean_pixel_data", "retain_institution_identity"} <= OPTIONS


@pytest.mark.parametrize(
    "options",
    [
        {"no_such_option"},
        {"retain_long_full_dates", "retain_long_modified_dates"},
        {"clean_recognizable_visual_features"},
    ],
)
def test_invalid_profiles_refused(options: set[str]) -> None:
    with pytest.raises(ValueError):
        Profile(options=frozenset(options))


def test_modified_dates_need_an_offset(planted: Planted) -> None:
    with pytest.raises(DeidentificationError):
        run(planted.raw, offset=0)


def test_not_dicom_is_a_clear_error() -> None:
    with pytest.raises(DeidentificationError, match="DICOM"):
        run(b"hello, not dicom")


@pytest.mark.parametrize(
    ("code", "type_", "expected"),
    [
        ("X/Z/D", 1, "D"),
        ("X/Z/D", 2, "Z"),
        ("X/Z/D", 3, "X"),
        ("X/Z/D", None, "D"),
        ("X/Z", 3, "X"),
        ("X/Z", 2, "Z"),
        ("X/Z", None, "Z"),
        ("X/D", 3, "X"),
        ("X/D", 1, "D"),
        ("Z/D", 1, "D"),
        ("Z/D", 2, "Z"),
        ("X/Z/U*", 3, "X"),
        ("X/Z/U*", 2, "Z"),
        ("X/Z/U*", 1, "U"),
        ("X/Z/U*", None, "U"),
        ("K", None, "K"),
    ],
)
def test_compound_codes(code: str, type_: int | None, expected: str) -> None:
    assert resolve(code, type_) == expected


def test_compiled_profile_is_cached() -> None:
    assert compile_profile(default_profile()) is compile_profile(default_profile())
    actions = compile_profile(default_profile()).actions
    assert actions[0x00081030] == "C"  # Study Description under Clean Descriptors
    assert actions[0x00080020] == "C"  # Study Date under Modified Dates
    assert actions[0x00181000] == "K"  # Device Serial Number under Retain Device Identity
    assert compile_profile(Profile(options=frozenset())).actions[0x00081030] == "X"


def test_nested_patient_identity_is_not_the_pseudonym() -> None:
    case = phi_ct()
    result = run(case.raw, Profile(options=frozenset({"retain_uids"})))
    ds = pydicom.dcmread(io.BytesIO(result.data or b""))
    # Referenced Patient Sequence is kept under Retain UIDs, its PatientName is not.
    ref = ds.ReferencedPatientSequence[0]
    assert ref.PatientName == ""
    assert KEYS.uid_root not in ref.ReferencedSOPInstanceUID


def test_profile_is_a_frozen_schema_model() -> None:
    profile = default_profile()
    with pytest.raises(ValidationError):
        profile.version = 2  # type: ignore[misc]
    schema = Profile.model_json_schema()
    assert {"options", "version", "keep_tags", "defacing_modalities"} <= set(schema["properties"])
    parsed = Profile.model_validate_json(profile.model_dump_json())
    assert parsed == profile and parsed.digest() == profile.digest()
    with pytest.raises(ValidationError, match="defacing_modalities"):
        Profile(options=frozenset({"clean_recognizable_visual_features"}))


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (set(), ["113100"]),
        ({"retain_uids", "retain_long_full_dates"}, ["113100", "113106", "113110"]),
        (
            {"retain_institution_identity", "clean_graphics", "clean_structured_content"},
            ["113100", "113103", "113104", "113112"],
        ),
    ],
)
def test_every_output_records_the_retained_options(options: set[str], expected: list[str]) -> None:
    profile = Profile(options=frozenset(options))
    held = base_ct()
    held.BurnedInAnnotation = "YES"
    outputs = [run(phi_ct().raw, profile), run(to_bytes(held), profile, release=True)]
    for result in outputs:
        ds = pydicom.dcmread(io.BytesIO(result.data or b""))
        assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == expected
        assert ds.PatientIdentityRemoved == "YES"
