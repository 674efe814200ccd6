"""Builders for the de-identification engine tests: synthetic instances with planted PHI.

Imported by the test modules (pytest puts this directory on sys.path: no __init__.py).
"""

from __future__ import annotations

import io
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from services.deid.engine import Keys, Profile, Request, Result, default_profile, deidentify

KEYS = Keys(secret=b"test-secret-0123456789abcdef", uid_root="1.2.826.0.1.3680043.10.999")
OFFSET = -500
PSEUDONYM = "IMARC-TEST-0001"


def seq(*items: Dataset) -> Sequence:
    return Sequence(list(items))


def item(**kw: Any) -> Dataset:
    ds = Dataset()
    for key, value in kw.items():
        setattr(ds, key, value)
    return ds


@dataclass
class Planted:
    """A synthetic instance and the PHI strings planted in it."""

    raw: bytes
    phi: list[str] = field(default_factory=list)
    uids: dict[str, str] = field(default_factory=dict)
    pixel_bytes: bytes = b""


def to_bytes(ds: Dataset, implicit: bool = False) -> bytes:
    buf = io.BytesIO()
    # Written "like the original" so that a wrong file meta (leak case 9) stays as planted.
    ds.save_as(buf, implicit_vr=implicit, little_endian=True)
    return buf.getvalue()


def base_ct(
    sop_uid: str = "1.2.3.4.5.6.7.777.3.1",
    study_uid: str = "1.2.3.4.5.6.7.777.1",
    series_uid: str = "1.2.3.4.5.6.7.777.2",
    rows: int = 16,
    columns: int = 16,
    implicit: bool = False,
) -> Dataset:
    """A small, valid CT image without any PHI beyond what the caller adds."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.preamble = b"P" * 128
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = "1.2.3.4.5.6.7.777.4"
    ds.Modality = "CT"
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.ManufacturerModelName = "LightSpeed VCT"
    ds.PatientName = "Plain^Patient"
    ds.PatientID = "PLAIN-ID-0001"
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.StudyDate = "20200315"
    ds.StudyTime = "101500"
    ds.ReferringPhysicianName = ""
    ds.AccessionNumber = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.InstanceNumber = 7
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 1.25
    ds.KVP = 120
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.PixelData = bytes((i * 7 + 3) % 256 for i in range(rows * columns * 2))
    return ds


def add_private(ds: Dataset, group: int, creator: str, byte: int, vr: str, value: Any) -> int:
    """Add a private element under ``creator``, reserving a block; returns its tag."""
    block = ds.private_block(group, creator, create=True)
    block.add_new(byte, vr, value)
    return int(block.get_tag(byte))


def phi_ct(
    sop_uid: str = "1.2.3.4.5.6.7.777.3.1",
    referenced_uid: str = "1.2.3.4.5.6.7.777.3.2",
    implicit: bool = False,
) -> Planted:
    """A CT with PHI planted in every class of the reference's leak table."""
    ds = base_ct(sop_uid=sop_uid, implicit=implicit)
    phi: list[str] = []

    def plant(value: str) -> str:
        phi.append(value)
        return value

    ds.PatientName = "ZEBRAFISH^QUINTUS^MAXIMILIAN"
    phi += ["ZEBRAFISH", "QUINTUS", "MAXIMILIAN"]
    ds.PatientID = plant("MRN77123459")
    ds.PatientBirthDate = plant("19510317")
    ds.PatientAge = "093Y"
    ds.PatientAddress = plant("17 Quokka Lane")
    ds.PatientTelephoneNumbers = plant("555-867-5309")
    ds.OtherPatientIDs = plant("OPID5550123")
    ds.OtherPatientNames = "ALIASNAME^ALFRED"
    phi.append("ALIASNAME")
    ds.IssuerOfPatientID = plant("ISSUER-WALLABY")
    ds.PatientBirthDateInAlternativeCalendar = plant("ALTCAL-1951")
    ds.AccessionNumber = plant("ACC99887766")
    ds.StudyID = plant("STUDYID4242")
    ds.InstitutionName = plant("ST WALLABY GENERAL HOSPITAL")
    ds.InstitutionAddress = plant("1 Wallaby Way")
    ds.StationName = plant("WALLABYCT01")
    ds.DeviceSerialNumber = plant("SN-4417-KANGA")
    ds.OperatorsName = "OPERATORSURNAME^OLIVE"
    phi.append("OPERATORSURNAME")
    ds.ReferringPhysicianName = "DRWOMBAT^WALTER"
    phi.append("DRWOMBAT")
    ds.PerformingPhysicianName = "PERFORMERNAME^PETRA"
    phi.append("PERFORMERNAME")
    ds.StudyDate = plant("20200315")
    ds.SeriesDate = "20200315"
    ds.AcquisitionDate = "20200315"
    ds.ContentDate = "20200315"
    ds.StudyTime = "101500"
    ds.AcquisitionDateTime = plant("20200315101733.123456+0100")
    ds.TimezoneOffsetFromUTC = "+0100"
    ds.InstanceCreationDate = "20200316"
    ds.ClinicalTrialSponsorName = plant("SPONSORWALLABY")
    ds.ClinicalTrialSubjectID = plant("SUBJWALLABY01")
    ds.ClinicalTrialProtocolName = plant("PROTOWALLABY")
    # Descriptors echoing the record's own identifiers (leak case 18).
    ds.StudyDescription = "CT CHEST zebrafish 03/15/2020"
    ds.SeriesDescription = "Quintus MRN77123459 axial 2020-03-15"
    ds.ProtocolName = "ACC99887766 chest protocol"
    ds.ImageComments = "Patient Zebrafish seen 15.03.2020, born 17 Mar 1951"
    ds.AdditionalPatientHistory = plant("HISTORY-WALLABY smoker")
    ds.ReasonForStudy = "cough zebrafish"
    # Sequences at depth >= 3 (leak cases 1, 2, 3, 20).
    ds.OtherPatientIDsSequence = seq(item(PatientID=plant("OPIDSEQ4242"), IssuerOfPatientID="X"))
    ds.ReferencedPatientSequence = seq(
        item(
            ReferencedSOPClassUID="1.2.840.10008.3.1.2.1.1",
            ReferencedSOPInstanceUID=plant("1.2.3.4.5.6.7.777.9.1"),
            PatientName="REFPATIENT^RUTH",
        )
    )
    phi.append("REFPATIENT")
    ds.RequestAttributesSequence = seq(
        item(
            AccessionNumber=plant("REQACC3131"),
            RequestedProcedureID=plant("REQPROC2121"),
            RequestedProcedureDescription="CT chest for ZEBRAFISH",
            ScheduledProcedureStepID=plant("SPSID-4343"),
            RequestingPhysician="REQUESTERNAME^RITA",
            ReferencedStudySequence=seq(
                item(
                    ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1",
                    ReferencedSOPInstanceUID=plant("1.2.3.4.5.6.7.777.9.2"),
                )
            ),
        )
    )
    phi.append("REQUESTERNAME")
    ds.ReferencedImageSequence = seq(
        item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=referenced_uid)
    )
    ds.SourceImageSequence = seq(
        item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=referenced_uid)
    )
    deep_text = item(
        RelationshipType="CONTAINS",
        ValueType="TEXT",
        TextValue="Seen by ZEBRAFISH family TEXTVALUE-WALLABY",
    )
    deep_pname = item(
        RelationshipType="HAS OBS CONTEXT",
        ValueType="PNAME",
        PersonName="DEEPPERSON^DAISY",
    )
    deep_date = item(RelationshipType="CONTAINS", ValueType="DATE", Date="20200317")
    deep_uid = item(
        RelationshipType="CONTAINS", ValueType="UIDREF", UID=plant("1.2.3.4.5.6.7.777.9.3")
    )
    phi.append("DEEPPERSON")
    ds.ContentSequence = seq(
        item(
            RelationshipType="CONTAINS",
            ValueType="CONTAINER",
            ContinuityOfContent="SEPARATE",
            ObservationDateTime="20200318080000",
            ContentSequence=seq(
                item(
                    RelationshipType="CONTAINS",
                    ValueType="CONTAINER",
                    ContinuityOfContent="SEPARATE",
                    ContentSequence=seq(deep_text, deep_pname, deep_date, deep_uid),
                )
            ),
        )
    )
    ds.VerifyingObserverSequence = seq(
        item(
            VerifyingObserverName="VERIFIERNAME^VERA",
            VerifyingOrganization=plant("VERIFY-ORG-WALLABY"),
            VerificationDateTime="20200319120000",
        )
    )
    phi.append("VERIFIERNAME")
    ds.RadiopharmaceuticalInformationSequence = seq(
        item(
            RadiopharmaceuticalStartDateTime="20200315093000",
            RadiopharmaceuticalStartTime="093000",
            Radiopharmaceutical="Fluorodeoxyglucose",
        )
    )
    ds.PerFrameFunctionalGroupsSequence = seq(
        item(
            FrameContentSequence=seq(item(FrameAcquisitionDateTime="20200315101800")),
            ReferencedImageSequence=seq(
                item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=referenced_uid)
            ),
        )
    )
    ds.OriginalAttributesSequence = seq(
        item(
            AttributeModificationDateTime="20200320",
            ModifyingSystem="ORIGMODSYS",
            SourceOfPreviousValues="ORIGSRC",
            ReasonForTheAttributeModification="COERCE",
            ModifiedAttributesSequence=seq(item(PatientName="ORIGATTRNAME^OSCAR")),
        )
    )
    phi += ["ORIGATTRNAME", "ORIGMODSYS"]
    icon = item(Rows=1, Columns=2, SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2")
    icon.BitsAllocated = 8
    icon.BitsStored = 8
    icon.HighBit = 7
    icon.PixelRepresentation = 0
    icon.PixelData = plant("ICONPIXELSWALLABY").encode() + b"\x00"
    ds.IconImageSequence = seq(icon)
    # Overlays and curves (leak case 22).
    ds.add_new(0x60000010, "US", 2)
    ds.add_new(0x60000011, "US", 2)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60000022, "LO", plant("OVLDESC-WALLABY"))
    ds.add_new(0x60001500, "LO", plant("OVLLABEL-WALLABY"))
    ds.add_new(0x60004000, "LT", plant("OVLCOMMENT-WALLABY"))
    ds.add_new(0x60003000, "OW", plant("OVLDATAWALLABY").encode())
    ds.add_new(0x50002500, "LO", plant("CURVELABEL-WALLABY"))
    # Unknown text-bearing attributes (leak case 17): an unlisted LO, a tag unknown to the
    # dictionary, and a UN value.
    ds.add_new(0x00181161, "LO", plant("TYPEOFFILTERS-WALLABY"))
    ds.add_new(0x0018FFF0, "LO", plant("UNKNOWNTEXT-WALLABY"))
    ds.add_new(0x0020FFF2, "UN", plant("UNVRTEXT-WALLABY").encode())
    # Private elements (leak cases 12-14): known creators, unknown creators, CSA, MITRA.
    add_private(ds, 0x0009, "GEMS_IDEN_01", 0x02, "SH", plant("PRIVSUITE-W"))
    add_private(ds, 0x0009, "GEMS_IDEN_01", 0x01, "LO", "GE_GENESIS_FF")
    add_private(ds, 0x0019, "GEMS_ACQU_01", 0x18, "LO", "S ZEBRAFISH")
    add_private(ds, 0x0019, "GEMS_ACQU_01", 0x02, "SL", 912)
    add_private(ds, 0x0029, "ACME PRIVATE 1", 0x10, "LO", plant("ACMESECRET-X1"))
    add_private(ds, 0x0029, "SIEMENS CSA HEADER", 0x10, "OB", b"SV10" + b"ZEBRAFISH" + b"\x00")
    add_private(ds, 0x0031, "MITRA LINKED ATTRIBUTES 1.0", 0x20, "LO", plant("GLOBALPID31337"))
    petd = ds.private_block(0x0009, "GEMS_PETD_01", create=True)
    petd.add_new(0x05, "DT", "19510317120000")  # Patient DateTime -> shifted
    petd.add_new(0x07, "UI", plant("1.2.3.4.5.6.7.777.9.4"))  # Exam ID -> re-rooted
    nested = item()
    add_private(nested, 0x0019, "ACME NESTED", 0x01, "LO", plant("NESTEDPRIV-W"))
    ds.ReferencedStudySequence = seq(
        nested,
        item(
            ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1",
            ReferencedSOPInstanceUID=plant("1.2.3.4.5.6.7.777.9.5"),
        ),
    )
    ds.DigitalSignaturesSequence = seq(item(DigitalSignatureUID=plant("1.2.3.4.5.6.7.777.9.6")))
    ds.DataSetTrailingPadding = plant("TRAILINGPAD-W").encode() + b"\x00"
    # File meta (leak case 9).
    ds.file_meta.MediaStorageSOPInstanceUID = plant("1.2.3.4.5.6.7.777.9.7")
    ds.file_meta.SourceApplicationEntityTitle = plant("SITEAEWALLA")
    ds.file_meta.ImplementationVersionName = plant("SITEIMPL-W")
    ds.file_meta.PrivateInformationCreatorUID = plant("1.2.3.4.5.6.7.777.9.8")
    ds.file_meta.PrivateInformation = plant("METAPRIVATE-W").encode() + b"\x00"
    ds.preamble = plant("PREAMBLEPHI-W").encode().ljust(128, b"\x00")
    uids = {
        "sop": sop_uid,
        "study": str(ds.StudyInstanceUID),
        "series": str(ds.SeriesInstanceUID),
        "for": str(ds.FrameOfReferenceUID),
        "ref": referenced_uid,
    }
    phi += [sop_uid, uids["study"], uids["series"], uids["for"], referenced_uid]
    phi = list(dict.fromkeys(phi))
    pixel_bytes = bytes(ds.PixelData)
    return Planted(to_bytes(ds, implicit), phi, uids, pixel_bytes)


def request(
    raw: bytes,
    profile: Profile | None = None,
    offset: int = OFFSET,
    release: bool = False,
    pseudonym: str = PSEUDONYM,
) -> Request:
    return Request(
        raw=raw,
        collection="TEST-COLLECTION",
        patient_pseudonym=pseudonym,
        keys=KEYS,
        profile=profile or default_profile(),
        date_offset_days=offset,
        release_pixel_hold=release,
    )


def run(
    raw: bytes,
    profile: Profile | None = None,
    offset: int = OFFSET,
    release: bool = False,
    pseudonym: str = PSEUDONYM,
) -> Result:
    return deidentify(request(raw, profile, offset, release, pseudonym))


def submit(requests: list[Request], separate_process: bool = False) -> list[Result]:
    """De-identify one submission's files; ``separate_process`` runs them in a fresh process
    (as a later submission handled by another worker would be), sharing nothing in memory."""
    if not separate_process:
        return [deidentify(r) for r in requests]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return list(pool.map(deidentify, requests))


def read(result: Result) -> Dataset:
    assert result.data is not None, result.held_reason
    return pydicom.dcmread(io.BytesIO(result.data))
