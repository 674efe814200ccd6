"""Leak class: references removed instead of remapped (issue 12, class 4; leak case 8).

Every reference to an instance, series, study, patient, procedure step or frame of reference
is kept and points at the target's new UID: across files, across submissions handled by
different processes, to targets that arrive only later, and to an instance held for pixel
review (it keeps its place: it gets that UID when released).
"""

from __future__ import annotations

from deid_factories import base_ct, item, read, request, seq, submit, to_bytes
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage

from services.deid.engine import Profile, default_profile

STUDY = "1.2.3.4.5.6.7.782.1"
SERIES = f"{STUDY}.2"
FOR = f"{STUDY}.4"
PATIENT = f"{STUDY}.90"  # a Detached Patient Management SOP instance
PPS = f"{STUDY}.91"
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"


def ct(n: int, held: bool = False, refs: tuple[str, ...] = ()) -> Dataset:
    ds = base_ct(sop_uid=f"{SERIES}.{n}", study_uid=STUDY, series_uid=SERIES)
    ds.FrameOfReferenceUID = FOR
    if held:
        ds.BurnedInAnnotation = "YES"
    image_refs = [
        item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=r) for r in refs
    ]
    ds.ReferencedImageSequence = seq(*image_refs)
    ds.SourceImageSequence = seq(
        *[item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=r) for r in refs]
    )
    ds.ReferencedStudySequence = seq(
        item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1", ReferencedSOPInstanceUID=STUDY)
    )
    ds.ReferencedPatientSequence = seq(
        item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.1.1", ReferencedSOPInstanceUID=PATIENT)
    )
    ds.ReferencedPerformedProcedureStepSequence = seq(
        item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.3", ReferencedSOPInstanceUID=PPS)
    )
    return ds


def rtstruct(refs: tuple[str, ...]) -> Dataset:
    ds = base_ct(sop_uid=f"{STUDY}.5.1", study_uid=STUDY, series_uid=f"{STUDY}.5")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = RTSTRUCT
    ds.Modality = "RTSTRUCT"
    for keyword in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit"):
        delattr(ds, keyword)
    contour_images = seq(
        *[item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=r) for r in refs]
    )
    ds.ReferencedFrameOfReferenceSequence = seq(
        item(
            FrameOfReferenceUID=FOR,
            RTReferencedStudySequence=seq(
                item(
                    ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1",
                    ReferencedSOPInstanceUID=STUDY,
                    RTReferencedSeriesSequence=seq(
                        item(SeriesInstanceUID=SERIES, ContourImageSequence=contour_images)
                    ),
                )
            ),
        )
    )
    ds.StructureSetROISequence = seq(item(ROINumber=1, ReferencedFrameOfReferenceUID=FOR))
    return ds


def referenced(ds: Dataset) -> list[str]:
    return [str(e.value) for e in ds.iterall() if e.keyword == "ReferencedSOPInstanceUID"]


def run_submissions(profile: Profile) -> dict[str, Dataset]:
    a1 = ct(1)
    held = ct(2, held=True)
    later = f"{SERIES}.3"  # arrives only with the second submission
    a4 = ct(4, refs=(a1.SOPInstanceUID, held.SOPInstanceUID, later))
    first = submit([request(to_bytes(ds), profile) for ds in (a1, held, a4)])
    assert first[1].data is None and first[1].held_reason  # held for pixel review
    second_files = [ct(3), rtstruct((a1.SOPInstanceUID, held.SOPInstanceUID, later))]
    second = submit(
        [request(to_bytes(ds), profile) for ds in second_files]
        + [request(to_bytes(held), profile, release=True)],  # the curator released it
        separate_process=True,
    )
    names = ["a1", "held", "a4"]
    outs = {n: read(r) for n, r in zip(names, first, strict=True) if r.data is not None}
    outs.update(zip(["a3", "rt", "held"], (read(r) for r in second), strict=True))
    outs["_held_place"] = Dataset()
    outs["_held_place"].SOPInstanceUID = first[1].deidentified.get("SOPInstanceUID", "")
    return outs


def test_every_reference_resolves_to_its_targets_new_uid() -> None:
    outs = run_submissions(default_profile())
    a1, held, a3, a4, rt = outs["a1"], outs["held"], outs["a3"], outs["a4"], outs["rt"]
    targets = [a1.SOPInstanceUID, held.SOPInstanceUID, a3.SOPInstanceUID]
    assert len(set(targets)) == 3
    # Image references from the first submission, including to the held and the later one.
    assert [r.ReferencedSOPInstanceUID for r in a4.ReferencedImageSequence] == targets
    assert [r.ReferencedSOPInstanceUID for r in a4.SourceImageSequence] == targets
    # The held instance kept its place: the UID given when it was held is the released one.
    assert outs["_held_place"].SOPInstanceUID == held.SOPInstanceUID
    for ds in (a1, a3, a4, held):
        assert ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID == ds.StudyInstanceUID
        assert ds.StudyInstanceUID == a1.StudyInstanceUID
        patient_ref = ds.ReferencedPatientSequence[0].ReferencedSOPInstanceUID
        assert patient_ref == a1.ReferencedPatientSequence[0].ReferencedSOPInstanceUID
        assert patient_ref != PATIENT
        pps = ds.ReferencedPerformedProcedureStepSequence[0].ReferencedSOPInstanceUID
        assert (
            pps != PPS
            and pps
            == a1.ReferencedPerformedProcedureStepSequence[0]["ReferencedSOPInstanceUID"].value
        )
    # The structure set from the second submission points into the first one.
    frame = rt.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == a1.FrameOfReferenceUID
    assert rt.StructureSetROISequence[0].ReferencedFrameOfReferenceUID == a1.FrameOfReferenceUID
    study = frame.RTReferencedStudySequence[0]
    assert study.ReferencedSOPInstanceUID == a1.StudyInstanceUID
    series = study.RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == a1.SeriesInstanceUID
    assert [c.ReferencedSOPInstanceUID for c in series.ContourImageSequence] == targets
    for ds in outs.values():
        for value in referenced(ds):
            assert not value.startswith(STUDY)  # no original UID left behind


def test_the_basic_profile_remaps_references_too() -> None:
    outs = run_submissions(Profile(options=frozenset()))
    a4 = outs["a4"]
    assert len(a4.ReferencedImageSequence) == 3
    assert a4.ReferencedImageSequence[0].ReferencedSOPInstanceUID == outs["a1"].SOPInstanceUID
    assert a4.ReferencedPatientSequence[0].ReferencedSOPInstanceUID != PATIENT


def test_retain_uids_keeps_references_as_they_were() -> None:
    outs = run_submissions(Profile(options=frozenset({"retain_uids"})))
    a4 = outs["a4"]
    assert a4.ReferencedImageSequence[0].ReferencedSOPInstanceUID == f"{SERIES}.1"
    assert a4.ReferencedPatientSequence[0].ReferencedSOPInstanceUID == PATIENT
