"""Generated DICOM for the deid service tests: small CT series with PHI and references."""

from __future__ import annotations

import io

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    RTStructureSetStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)

ROOT = "1.2.826.0.1.3680043.10.1147."


def _file(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _base(
    sop_class: str, patient_id: str, patient_name: str, study: str, series: str, number: int
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    sop = generate_uid(ROOT)
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19610412"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.StudyDate = "20190314"
    ds.SeriesDate = "20190314"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC99812"
    ds.StudyID = "S1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.InstitutionName = "Springfield General"
    ds.ReferringPhysicianName = "Hibbert^Julius"
    ds.Manufacturer = "ACME"
    ds.StudyDescription = f"CT CHEST {patient_name.split('^')[0]}"
    return ds


def ct_series(
    patient_id: str = "PAT-001",
    patient_name: str = "Smith^Jane",
    n: int = 3,
    rows: int = 32,
    study: str | None = None,
) -> list[bytes]:
    """``n`` CT slices of one series; each slice references the previous one and all share
    a Frame of Reference, so reference consistency can be checked after de-id."""
    study = study or generate_uid(ROOT)
    series = generate_uid(ROOT)
    frame = generate_uid(ROOT)
    out: list[bytes] = []
    previous: str | None = None
    for i in range(n):
        ds = _base(CTImageStorage, patient_id, patient_name, study, series, i + 1)
        ds.Modality = "CT"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.FrameOfReferenceUID = frame
        ds.ImagePositionPatient = [0, 0, float(i)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceThickness = 1.0
        ds.PixelSpacing = [0.7, 0.7]
        ds.KVP = 120
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        if previous is not None:
            ref = Dataset()
            ref.ReferencedSOPClassUID = CTImageStorage
            ref.ReferencedSOPInstanceUID = previous
            ds.ReferencedImageSequence = Sequence([ref])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = rows
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        pixels = (np.arange(rows * rows, dtype=np.uint16).reshape(rows, rows) + i) % 4096
        ds.PixelData = pixels.tobytes()
        previous = ds.SOPInstanceUID
        out.append(_file(ds))
    return out


def burned_in(patient_id: str = "PAT-SC", patient_name: str = "Doe^John") -> bytes:
    """A Secondary Capture with BurnedInAnnotation YES: the pixel screen must hold it."""
    ds = _base(
        SecondaryCaptureImageStorage,
        patient_id,
        patient_name,
        generate_uid(ROOT),
        generate_uid(ROOT),
        1,
    )
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "YES"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(256))
    return _file(ds)


def read(raw: bytes) -> Dataset:
    return dcmread(io.BytesIO(raw))


def uid_values(ds: Dataset) -> set[str]:
    """Every UI value in a dataset, its sequences and its file meta, except the
    Implementation Class UID, which names the software that wrote the file."""
    out: set[str] = set()

    def walk(d: Dataset) -> None:
        for elem in d:
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item)
            elif elem.VR == "UI" and elem.value and elem.keyword != "ImplementationClassUID":
                values = elem.value if elem.VM > 1 else [elem.value]
                out.update(str(v) for v in values)

    walk(ds)
    if hasattr(ds, "file_meta"):
        walk(ds.file_meta)
    return out


def rt_structure_set(images: list[bytes]) -> bytes:
    """An RT Structure Set whose contours reference every slice of ``images`` (one series):
    after de-id its references must name the slices' new UIDs."""
    slices = [read(raw) for raw in images]
    first = slices[0]
    ds = _base(
        RTStructureSetStorage,
        str(first.PatientID),
        str(first.PatientName),
        str(first.StudyInstanceUID),
        generate_uid(ROOT),
        1,
    )
    ds.Modality = "RTSTRUCT"
    ds.StructureSetLabel = "GTV"
    ds.StructureSetDate = "20190315"
    ds.StructureSetTime = "090000"
    contour_images = []
    for s in slices:
        item = Dataset()
        item.ReferencedSOPClassUID = s.SOPClassUID
        item.ReferencedSOPInstanceUID = s.SOPInstanceUID
        contour_images.append(item)
    series_item = Dataset()
    series_item.SeriesInstanceUID = first.SeriesInstanceUID
    series_item.ContourImageSequence = Sequence(contour_images)
    study_item = Dataset()
    study_item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Mgmt (retired)
    study_item.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study_item.RTReferencedSeriesSequence = Sequence([series_item])
    frame_item = Dataset()
    frame_item.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame_item.RTReferencedStudySequence = Sequence([study_item])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame_item])
    roi = Dataset()
    roi.ROINumber = 1
    roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
    roi.ROIName = "GTV"
    roi.ROIGenerationAlgorithm = "MANUAL"
    ds.StructureSetROISequence = Sequence([roi])
    return _file(ds)
