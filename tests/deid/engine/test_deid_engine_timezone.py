"""Leak class: the timezone (issue 12, class 1; leak case 4).

Timezone Offset From UTC (0008,0201) and the ``&ZZXX`` suffix of DT values say where the
patient was. With shifted dates both go, at every depth and in kept private dates, and every
time stays the local time it was; with full dates both are kept as they are.
"""

from __future__ import annotations

import re

import pytest
from deid_factories import add_private, base_ct, item, read, request, seq, submit, to_bytes
from pydicom.dataset import Dataset

from services.deid.engine import Profile, default_profile

ZONE = re.compile(r"[+-]\d{4}$")
PET = "1.2.840.10008.5.1.4.1.1.128"


def ct(n: int, zone: str) -> bytes:
    ds = base_ct(sop_uid=f"1.2.3.4.5.6.7.778.3.{n}", series_uid="1.2.3.4.5.6.7.778.2")
    ds.TimezoneOffsetFromUTC = zone
    ds.AcquisitionDateTime = f"20200315101733.{n:06d}{zone}"
    ds.PerFrameFunctionalGroupsSequence = seq(
        item(FrameContentSequence=seq(item(FrameAcquisitionDateTime=f"2020031510180{n}{zone}")))
    )
    petd = ds.private_block(0x0009, "GEMS_PETD_01", create=True)
    petd.add_new(0x05, "DT", f"19510317120000{zone}")
    return to_bytes(ds)


def pet(n: int, zone: str) -> bytes:
    ds = base_ct(sop_uid=f"1.2.3.4.5.6.7.779.3.{n}", series_uid="1.2.3.4.5.6.7.779.2")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = PET
    ds.Modality = "PT"
    ds.TimezoneOffsetFromUTC = zone
    ds.RadiopharmaceuticalInformationSequence = seq(
        item(
            RadiopharmaceuticalStartDateTime=f"20200315093000{zone}",
            RadiopharmaceuticalStartTime="093000",
        )
    )
    add_private(ds, 0x0011, "ACME ZONE", 0x01, "SH", zone)  # unknown private: removed
    return to_bytes(ds)


def first_and_second_submission(profile: Profile) -> list[Dataset]:
    zone = "+0930"
    first = [request(ct(1, zone), profile), request(pet(1, zone), profile)]
    second = [request(ct(2, zone), profile), request(pet(2, zone), profile)]
    results = submit(first) + submit(second, separate_process=True)
    return [read(r) for r in results]


def date_times(ds: Dataset) -> list[str]:
    values = [str(e.value) for e in ds.iterall() if e.VR == "DT" and e.value]
    try:
        petd = ds.private_block(0x0009, "GEMS_PETD_01")
    except KeyError:  # not kept without Retain Safe Private
        return values
    values.append(str(ds[petd.get_tag(0x05)].value))
    return values


def test_shifted_dates_drop_the_timezone_everywhere() -> None:
    for ds in first_and_second_submission(default_profile()):
        assert "TimezoneOffsetFromUTC" not in ds
        assert not any(e.tag == 0x00080201 for e in ds.iterall())
        values = date_times(ds)
        assert values, "the DT values themselves are kept (shifted)"
        assert [v for v in values if ZONE.search(v)] == []
        assert all(b"+0930" not in bytes(e.value) for e in ds.iterall() if e.VR == "UN")
    ct1, pet1, ct2, pet2 = first_and_second_submission(default_profile())
    # Times stay the local times they were; dates move by the same offset in both submissions.
    assert ct1.AcquisitionDateTime == "20181101101733.000001"
    assert ct2.AcquisitionDateTime == "20181101101733.000002"
    frame = ct2.PerFrameFunctionalGroupsSequence[0].FrameContentSequence[0]
    assert frame.FrameAcquisitionDateTime == "20181101101802"
    for ds in (pet1, pet2):
        radio = ds.RadiopharmaceuticalInformationSequence[0]
        assert radio.RadiopharmaceuticalStartDateTime == "20181101093000"
        assert radio.RadiopharmaceuticalStartTime == "093000"
    petd = ct1.private_block(0x0009, "GEMS_PETD_01")
    assert ct1[petd.get_tag(0x05)].value == "19491102120000"


@pytest.mark.parametrize("options", [set(), {"clean_descriptors", "retain_device_identity"}])
def test_without_date_options_the_timezone_goes(options: set[str]) -> None:
    for ds in first_and_second_submission(Profile(options=frozenset(options))):
        assert "TimezoneOffsetFromUTC" not in ds
        assert [v for v in date_times(ds) if "0930" in v] == []


def test_full_dates_keep_the_timezone_and_the_offsets() -> None:
    profile = Profile(options=frozenset({"retain_long_full_dates", "retain_safe_private"}))
    ct1, pet1, ct2, _ = first_and_second_submission(profile)
    for ds in (ct1, pet1, ct2):
        assert ds.TimezoneOffsetFromUTC == "+0930"
    assert ct2.AcquisitionDateTime == "20200315101733.000002+0930"
    radio = pet1.RadiopharmaceuticalInformationSequence[0]
    assert radio.RadiopharmaceuticalStartDateTime == "20200315093000+0930"
