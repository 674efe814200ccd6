"""Benchmark: de-identification engine versus a plain pydicom read + 43 edits + write.

Generates N synthetic 512x512 16-bit CT instances in memory (deterministic, ~100 header
attributes including GE private blocks and nested sequences), then times, single process:

  (a) the floor: dcmread, 43 attribute edits, save_as (what a naive anonymizer does);
  (b) services.deid.engine.deidentify() with the default (TCIA-practice) profile.

Usage: python bench/deid_bench.py [-n 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.deid.engine import Keys, Request, default_profile, deidentify

ROWS = COLUMNS = 512
EDITS = [
    ("PatientName", "ANON"),
    ("PatientID", "ANON-1"),
    ("PatientBirthDate", ""),
    ("PatientSex", ""),
    ("PatientAge", "050Y"),
    ("PatientWeight", "70"),
    ("PatientSize", "1.7"),
    ("OtherPatientIDs", ""),
    ("EthnicGroup", ""),
    ("PatientComments", ""),
    ("AccessionNumber", ""),
    ("StudyID", ""),
    ("StudyDate", "20000101"),
    ("SeriesDate", "20000101"),
    ("AcquisitionDate", "20000101"),
    ("ContentDate", "20000101"),
    ("InstanceCreationDate", "20000101"),
    ("StudyTime", "000000"),
    ("SeriesTime", "000000"),
    ("AcquisitionTime", "000000"),
    ("ContentTime", "000000"),
    ("InstanceCreationTime", "000000"),
    ("AcquisitionDateTime", "20000101000000"),
    ("ReferringPhysicianName", ""),
    ("PerformingPhysicianName", ""),
    ("OperatorsName", ""),
    ("NameOfPhysiciansReadingStudy", ""),
    ("InstitutionName", ""),
    ("InstitutionAddress", ""),
    ("InstitutionalDepartmentName", ""),
    ("StationName", ""),
    ("DeviceSerialNumber", ""),
    ("StudyDescription", "CT"),
    ("SeriesDescription", "CT"),
    ("ProtocolName", "CT"),
    ("ImageComments", ""),
    ("RequestedProcedureDescription", ""),
    ("StudyInstanceUID", "2.25.1"),
    ("SeriesInstanceUID", "2.25.2"),
    ("SOPInstanceUID", "2.25.3"),
    ("FrameOfReferenceUID", "2.25.4"),
    ("PatientIdentityRemoved", "YES"),
    ("DeidentificationMethod", "naive"),
]
assert len(EDITS) == 43


def make_instance(index: int, rng: random.Random) -> bytes:
    study = "1.2.840.113619.2.55.3.4271045733.996.1449464144.595"
    series = f"{study}.{index // 100 + 1}"
    sop = f"{series}.{index + 1}"
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = "1.2.840.113619.6.374"
    ds.file_meta.SourceApplicationEntityTitle = "CT99_OC0"
    ds.preamble = b"\x00" * 128
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceCreationDate = "20210614"
    ds.InstanceCreationTime = "101523"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20210614"
    ds.StudyTime, ds.SeriesTime = "100512", "100945"
    ds.AcquisitionTime = ds.ContentTime = f"1010{index % 60:02d}"
    ds.AcquisitionDateTime = f"20210614101{index % 10}00.000000"
    ds.AccessionNumber = "A20210614-0042"
    ds.Modality = "CT"
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.InstitutionName = "Springfield General Hospital"
    ds.InstitutionAddress = "1 Main Street, Springfield"
    ds.ReferringPhysicianName = "HIBBERT^JULIUS"
    ds.StationName = "CT99_OC0"
    ds.StudyDescription = "CT CHEST W CONTRAST SIMPSON 06/14/2021"
    ds.SeriesDescription = "AXIAL 1.25 STND"
    ds.InstitutionalDepartmentName = "Radiology"
    ds.PerformingPhysicianName = "RIVIERA^NICK"
    ds.OperatorsName = "SMITHERS^WAYLON"
    ds.ManufacturerModelName = "Revolution CT"
    ds.ReferencedStudySequence = Sequence([Dataset()])
    ds.ReferencedStudySequence[0].ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID = study + ".9"
    ds.PatientName = "SIMPSON^HOMER^J"
    ds.PatientID = "MRN0042424242"
    ds.PatientBirthDate = "19560512"
    ds.PatientSex = "M"
    ds.PatientAge = "065Y"
    ds.PatientWeight = 108.0
    ds.PatientSize = 1.83
    ds.OtherPatientIDs = "SSN-987-65-4320"
    ds.EthnicGroup = "W"
    ds.ContrastBolusAgent = "OMNIPAQUE 350"
    ds.ScanOptions = "HELICAL MODE"
    ds.SliceThickness = 1.25
    ds.KVP = 120
    ds.DataCollectionDiameter = 500
    ds.DeviceSerialNumber = "*CT99*"
    ds.SoftwareVersions = "rev_18"
    ds.ProtocolName = "5.1 CHEST WITH CONTRAST"
    ds.ReconstructionDiameter = 360
    ds.DistanceSourceToDetector = 1097.3
    ds.DistanceSourceToPatient = 625.6
    ds.GantryDetectorTilt = 0
    ds.TableHeight = 151.5
    ds.RotationDirection = "CW"
    ds.ExposureTime = 500
    ds.XRayTubeCurrent = 300 + index % 50
    ds.Exposure = 150
    ds.FilterType = "BODY FILTER"
    ds.GeneratorPower = 36000
    ds.FocalSpots = 1.2
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "FFS"
    ds.RevolutionTime = 0.5
    ds.SingleCollimationWidth = 0.625
    ds.TotalCollimationWidth = 40
    ds.TableSpeed = 39.37
    ds.TableFeedPerRotation = 39.37
    ds.SpiralPitchFactor = 0.984
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.StudyID = "4242"
    ds.SeriesNumber = index // 100 + 1
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = index % 100 + 1
    ds.ImagePositionPatient = [-180.0, -180.0, -1.25 * index]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = study + ".7"
    ds.PositionReferenceIndicator = "SN"
    ds.SliceLocation = -1.25 * index
    ds.ImageComments = "SIMPSON follow-up"
    ds.RequestAttributesSequence = Sequence([Dataset()])
    req = ds.RequestAttributesSequence[0]
    req.RequestedProcedureID = "RP0042"
    req.ScheduledProcedureStepID = "SPS0042"
    req.RequestedProcedureDescription = "CT CHEST"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.PixelSpacing = [0.703125, 0.703125]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.PixelPaddingValue = -2000
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.RescaleType = "HU"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    for creator, group, elements in (
        ("GEMS_IDEN_01", 0x0009, [(0x01, "LO", "GE_GENESIS_FF"), (0x02, "SH", "CT99")]),
        (
            "GEMS_ACQU_01",
            0x0019,
            [(0x02, "SL", 912), (0x03, "DS", "373.75"), (0x18, "LO", "S"), (0x23, "DS", "39.37")],
        ),
        ("GEMS_PARM_01", 0x0043, [(0x10, "US", 400), (0x27, "SH", "/0.984:1")]),
    ):
        block = ds.private_block(group, creator, create=True)
        for byte, vr, value in elements:
            block.add_new(byte, vr, value)
    ds.PixelData = rng.randbytes(ROWS * COLUMNS * 2)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def plain(raw: bytes) -> bytes:
    from pydicom import dcmread

    ds = dcmread(io.BytesIO(raw))
    for keyword, value in EDITS:
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="instances (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    args = parser.parse_args()
    rng = random.Random(42)
    corpus = [make_instance(i, rng) for i in range(args.n)]
    megabytes = sum(len(r) for r in corpus) / 1e6
    keys = Keys(secret=b"bench-secret-0123456789abcdef", uid_root="2.25")
    profile = default_profile()

    def engine(raw: bytes) -> bytes:
        result = deidentify(
            Request(
                raw=raw,
                collection="BENCH",
                patient_pseudonym="BENCH-0001",
                keys=keys,
                profile=profile,
                date_offset_days=-1234,
            )
        )
        assert result.data is not None, result.held_reason
        return result.data

    engine(corpus[0])  # load tables and compile the profile outside the timing
    plain(corpus[0])
    # Alternate the two runs and keep each one's best round: a shared machine's noise then
    # penalises neither side.
    best: dict[str, float] = {}
    candidates = (("plain read + 43 edits + write", plain), ("deidentify()", engine))
    for _ in range(args.rounds):
        for name, fn in candidates:
            start = time.perf_counter()
            for raw in corpus:
                fn(raw)
            elapsed = time.perf_counter() - start
            best[name] = min(best.get(name, elapsed), elapsed)
    rates = {}
    for name, elapsed in best.items():
        rates[name] = args.n / elapsed
        print(
            f"{name:32s} {args.n / elapsed:8.1f} instances/s {megabytes / elapsed:8.1f} MB/s"
            f"  (best of {args.rounds}: {elapsed:.2f} s for {args.n} instances, {megabytes:.1f} MB)"
        )
    ratio = rates["deidentify()"] / rates["plain read + 43 edits + write"]
    print(f"ratio deidentify / plain: {ratio:.2f} (target >= 0.50)")


if __name__ == "__main__":
    main()
