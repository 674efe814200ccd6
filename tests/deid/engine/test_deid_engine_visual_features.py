"""Leak class: recognisable faces (issue 12, class 7; leak case 26).

An instance whose Recognizable Visual Features (0028,0302) is YES (a VL photograph, a head
scan) is held with kind ``recognizable_features`` unless the profile has a defacing step for
its modality; a curator's release (after review) lets it through.
"""

from __future__ import annotations

from deid_factories import base_ct, read, request, submit, to_bytes
from pydicom.dataset import Dataset

from services.deid.engine import HOLD_RECOGNIZABLE_FEATURES, Profile, default_profile

VL_PHOTO = "1.2.840.10008.5.1.4.1.1.77.1.4"
MR = "1.2.840.10008.5.1.4.1.1.4"


def photo(n: int) -> Dataset:
    ds = base_ct(sop_uid=f"1.2.3.4.5.6.7.783.3.{n}", series_uid="1.2.3.4.5.6.7.783.2")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = VL_PHOTO
    ds.Modality = "XC"
    ds.RecognizableVisualFeatures = "YES"
    return ds


def head_mr(n: int, features: str | None = "YES") -> Dataset:
    ds = base_ct(sop_uid=f"1.2.3.4.5.6.7.784.3.{n}", series_uid="1.2.3.4.5.6.7.784.2")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MR
    ds.Modality = "MR"
    ds.BodyPartExamined = "HEAD"
    if features is not None:
        ds.RecognizableVisualFeatures = features
    return ds


def test_faces_are_held_unless_the_modality_is_defaced() -> None:
    plain = default_profile()
    defacing = Profile(options=plain.options, defacing_modalities=("MR",))
    first = submit(
        [
            request(to_bytes(photo(1)), plain),
            request(to_bytes(head_mr(1)), plain),
            request(to_bytes(head_mr(2, "NO")), plain),
            request(to_bytes(head_mr(3, None)), plain),
        ]
    )
    second = submit(
        [request(to_bytes(photo(2)), defacing), request(to_bytes(head_mr(4)), defacing)],
        separate_process=True,
    )
    held = [first[0], first[1], second[0]]
    for result in held:
        assert result.data is None
        assert result.hold_kind == HOLD_RECOGNIZABLE_FEATURES
        assert result.held_reason is not None
        assert "recognizable visual features" in result.held_reason.lower()
        assert "defacing" in result.held_reason  # says what would let it through
        assert result.deidentified["SOPInstanceUID"]  # it keeps its place
    for result in (first[2], first[3], second[1]):
        assert result.data is not None and result.hold_kind is None
    assert read(second[1]).Modality == "MR"


def test_a_reviewed_release_lets_the_photo_through() -> None:
    result = submit([request(to_bytes(photo(3)), default_profile(), release=True)])[0]
    out = read(result)
    assert result.hold_kind is None
    assert out.RecognizableVisualFeatures == "YES"  # not defaced, and says so


def test_defacing_modalities_are_part_of_the_profile() -> None:
    profile = Profile(options=frozenset(), defacing_modalities=("mr", "CT", "MR"))
    assert profile.defacing_modalities == ("CT", "MR")
    assert Profile.from_json(profile.to_json()) == profile
    assert profile.digest() != Profile(options=frozenset()).digest()
