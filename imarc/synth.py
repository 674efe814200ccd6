"""Deterministic synthetic CT series: realistic headers (with the PHI a scanner writes)
and 16-bit pixel data, for the demo collection, tests and benchmarks.

Nothing here is random at run time: the same arguments give the same bytes.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, CTImageStorage, ExplicitVRLittleEndian


def _uid(*parts: object) -> str:
    """A stable UID under the 2.25 (UUID-derived) root."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()[:16]
    return "2.25." + str(int.from_bytes(digest, "big"))


@dataclass(frozen=True)
class SeriesSpec:
    patient_id: str = "SYN0001"
    patient_name: str = "DOE^JANE^Q"
    study_key: str = "study-1"
    series_key: str = "series-1"
    slices: int = 20
    rows: int = 512
    columns: int = 512
    study_date: str = "20210315"
    institution: str = "General Hospital Imaging Center"
    manufacturer: str = "SIEMENS"
    model: str = "SOMATOM Definition AS"
    body_part: str = "CHEST"


def _phantom(spec: SeriesSpec, index: int) -> np.ndarray:
    """A smooth body-like ellipse with a moving 'lesion': cheap, deterministic, 16-bit."""
    y, x = np.ogrid[: spec.rows, : spec.columns]
    cy, cx = spec.rows / 2, spec.columns / 2
    body = ((x - cx) / (spec.columns * 0.42)) ** 2 + ((y - cy) / (spec.rows * 0.33)) ** 2 <= 1
    img = np.full((spec.rows, spec.columns), -1000, dtype=np.int16)
    img[body] = 40
    ly = cy + (index % 7) * 3
    lesion = (x - cx * 0.8) ** 2 + (y - ly) ** 2 <= (spec.rows * 0.03) ** 2
    img[lesion] = 120
    return img


def ct_dataset(spec: SeriesSpec, index: int) -> Dataset:
    study_uid = _uid(spec.patient_id, spec.study_key)
    series_uid = _uid(spec.patient_id, spec.study_key, spec.series_key)
    sop_uid = _uid(spec.patient_id, spec.study_key, spec.series_key, index)
    frame_uid = _uid(spec.patient_id, spec.study_key, "frame")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = UID(sop_uid)
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = spec.study_date
    ds.StudyTime, ds.SeriesTime = "101500", "102000"
    ds.AcquisitionTime = ds.ContentTime = f"1021{index % 60:02d}"
    ds.AccessionNumber = f"ACC{int(hashlib.md5(spec.study_key.encode()).hexdigest()[:6], 16)}"
    ds.Modality = "CT"
    ds.Manufacturer = spec.manufacturer
    ds.InstitutionName = spec.institution
    ds.InstitutionAddress = "1 Hospital Way, Springfield"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.StationName = "CT01"
    ds.StudyDescription = f"CT CHEST W CONTRAST {spec.patient_name.split('^')[0]}"
    ds.SeriesDescription = "AXIAL 5MM"
    ds.InstitutionalDepartmentName = "Radiology"
    ds.PerformingPhysicianName = "WATSON^JOHN"
    ds.OperatorsName = "TECH^ANNA"
    ds.ManufacturerModelName = spec.model
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = _uid(spec.patient_id, spec.study_key, spec.series_key, 0)
    ds.ReferencedImageSequence = Sequence([ref])
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = "19600704"
    ds.PatientSex = "F"
    ds.PatientAge = "060Y"
    ds.PatientWeight = "70"
    ds.OtherPatientIDs = f"MRN-{spec.patient_id}"
    ds.BodyPartExamined = spec.body_part
    ds.SliceThickness = "5.0"
    ds.KVP = "120"
    ds.DeviceSerialNumber = "SN-48213"
    ds.SoftwareVersions = "syngo CT VA48A"
    ds.ProtocolName = "CHEST_ROUTINE"
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [-250.0, -250.0, -5.0 * index]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = -5.0 * index
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = spec.rows, spec.columns
    ds.PixelSpacing = [0.9765625, 0.9765625]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.RescaleIntercept, ds.RescaleSlope = "0", "1"
    ds.PixelData = _phantom(spec, index).tobytes()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def ct_series(spec: SeriesSpec) -> Iterator[bytes]:
    """The Part 10 bytes of each slice of one series."""
    for i in range(spec.slices):
        yield to_bytes(ct_dataset(spec, i))


def corpus(
    instances: int, *, per_series: int = 100, rows: int = 512, columns: int = 512, patients: int = 4
) -> Iterator[tuple[str, bytes]]:
    """(filename, bytes) of ``instances`` CT slices over several patients and series."""
    n = 0
    s = 0
    while n < instances:
        p = s % patients
        spec = SeriesSpec(
            patient_id=f"SYN{p + 1:04d}",
            patient_name=f"PATIENT{p + 1}^TEST",
            study_key=f"study-{p}",
            series_key=f"series-{s}",
            slices=min(per_series, instances - n),
            rows=rows,
            columns=columns,
        )
        for i, data in enumerate(ct_series(spec)):
            yield f"{spec.patient_id}/series-{s}/{i + 1:04d}.dcm", data
        n += spec.slices
        s += 1
