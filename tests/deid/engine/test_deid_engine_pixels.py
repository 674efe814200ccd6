"""Pixel screening: instances that may carry burned-in PHI are held or blanked by rule."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from deid_factories import base_ct, run, to_bytes
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from services.deid.engine import BlankRule, PixelRule, Profile, default_profile


def profile_with(**kw: object) -> Profile:
    return Profile(options=default_profile().options, **kw)  # type: ignore[arg-type]


def held(ds: Dataset, profile: Profile | None = None) -> str | None:
    result = run(to_bytes(ds), profile)
    assert (result.data is None) == (result.held_reason is not None)
    return result.held_reason


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda ds: setattr(ds, "BurnedInAnnotation", "YES"), "BurnedInAnnotation"),
        (lambda ds: setattr(ds, "ImageType", ["DERIVED", "SECONDARY"]), "SECONDARY"),
        (lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "SCREEN SAVE"]), "SCREEN SAVE"),
        (lambda ds: setattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.7"), "Secondary"),
        (lambda ds: setattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.7.4"), "Secondary"),
        (lambda ds: setattr(ds, "Modality", "US"), "ultrasound"),
        (lambda ds: setattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.6.1"), "ultrasound"),
    ],
)
def test_screening_holds(mutate: object, why: str) -> None:
    ds = base_ct()
    mutate(ds)  # type: ignore[operator]
    reason = held(ds)
    assert reason is not None and reason.startswith("possible burned-in PHI: ")
    assert why in reason


def test_clean_image_is_not_held() -> None:
    assert held(base_ct()) is None


def test_manufacturer_rule_holds() -> None:
    rule = PixelRule(manufacturer="ge medical", model="lightspeed", reason="GE dose screen")
    assert "GE dose screen" in (held(base_ct(), profile_with(pixel_rules=(rule,))) or "")
    other = PixelRule(manufacturer="siemens")
    assert held(base_ct(), profile_with(pixel_rules=(other,))) is None


def test_release_after_review_keeps_pixels_identical() -> None:
    ds = base_ct()
    ds.BurnedInAnnotation = "YES"
    result = run(to_bytes(ds), release=True)
    assert result.held_reason is None and result.data is not None
    out = pydicom.dcmread(io.BytesIO(result.data))
    assert out.PixelData == ds.PixelData
    assert out.BurnedInAnnotation == "YES"  # nothing was cleaned: no claim otherwise


def test_blank_rule_blanks_rectangle_and_records_clean_pixel_data() -> None:
    ds = base_ct(rows=16, columns=16)
    ds.Modality = "US"
    rule = BlankRule(rectangles=((0, 0, 16, 3),), manufacturer="GE", rows=16, columns=16)
    result = run(to_bytes(ds), profile_with(blank_rectangles=(rule,)))
    assert result.held_reason is None and result.data is not None
    out = pydicom.dcmread(io.BytesIO(result.data))
    before = np.frombuffer(ds.PixelData, dtype="<u2").reshape(16, 16)
    after = np.frombuffer(out.PixelData, dtype="<u2").reshape(16, 16)
    assert (after[:3] == 0).all()
    assert (after[3:] == before[3:]).all()
    assert out.BurnedInAnnotation == "NO"
    assert "113101" in [i.CodeValue for i in out.DeidentificationMethodCodeSequence]


def test_blank_rule_must_match_size() -> None:
    ds = base_ct(rows=16, columns=16)
    ds.Modality = "US"
    rule = BlankRule(rectangles=((0, 0, 4, 4),), rows=512, columns=512)
    assert held(ds, profile_with(blank_rectangles=(rule,))) is not None


def test_blank_rule_on_compressed_data_stays_held() -> None:
    path = get_testdata_file("JPEG2000.dcm")
    assert path is not None
    with open(path, "rb") as fh:
        raw = fh.read()
    rule = BlankRule(rectangles=((0, 0, 4, 4),))
    result = run(raw, profile_with(blank_rectangles=(rule,)))
    assert result.data is None
    assert "compressed" in (result.held_reason or "")


def test_rgb_planar_blanking() -> None:
    ds = base_ct(rows=4, columns=4)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 1
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = bytes(range(1, 49))
    ds.BurnedInAnnotation = "YES"
    rule = BlankRule(rectangles=((0, 0, 2, 1),))
    result = run(to_bytes(ds), profile_with(blank_rectangles=(rule,)))
    out = np.frombuffer(pydicom.dcmread(io.BytesIO(result.data or b"")).PixelData, "u1")
    planes = out.reshape(3, 4, 4)
    assert (planes[:, 0, :2] == 0).all()
    assert (planes[:, 0, 2:] != 0).all() and (planes[:, 1:] != 0).all()


def test_embedded_overlay_is_held() -> None:
    ds = base_ct()
    ds.add_new(0x60000100, "US", 16)
    ds.add_new(0x60000102, "US", 12)
    assert "overlay embedded" in (held(ds) or "")


def test_compressed_pixel_data_passes_through_untouched() -> None:
    path = get_testdata_file("MR_small_RLE.dcm")
    assert path is not None
    with open(path, "rb") as fh:
        raw = fh.read()
    original = pydicom.dcmread(io.BytesIO(raw))
    result = run(raw, release=True)  # its ImageType is DERIVED\\SECONDARY
    assert result.data is not None
    out = pydicom.dcmread(io.BytesIO(result.data))
    assert out.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert out.PixelData == original.PixelData
