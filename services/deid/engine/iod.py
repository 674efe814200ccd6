"""A small curated table of attribute Types (PS3.3) for resolving compound action codes.

Table E.1-1 codes such as X/Z/D say "remove unless the IOD needs the attribute (Type 2: zero
length, Type 1: dummy)". The full answer needs every IOD's module tables; this engine ships the
Types of the attributes that carry compound codes in the IODs an imaging archive mostly sees
(CT, MR, PET, NM, CR/DX/MG, US, SC, RT, SR, enhanced multi-frame), from PS3.3 (2024b):

* ``COMMON_TYPES``: the Type in the modules every image IOD shares (Patient, General Study,
  General Series, General Equipment, General Image, SOP Common, Frame of Reference).
* ``SOP_CLASS_TYPES``: overrides for families of SOP classes (by UID prefix).
* ``NESTED_TYPES``: Types inside a given sequence's items.

When a Type is unknown the resolution is the variant that keeps any IOD valid (D for codes
ending in D, Z for X/Z, U for X/Z/U*). Every such variant still removes the original value, so
an unknown Type never costs privacy, only a dummy value where removal would have done.
"""

from __future__ import annotations

#: tag -> Type (1, 2 or 3) in the common composite image modules (PS3.3 C.7, C.12.1).
COMMON_TYPES: dict[int, int] = {
    0x00080012: 3,  # Instance Creation Date (SOP Common)
    0x00080013: 3,  # Instance Creation Time
    0x00080021: 3,  # Series Date (General Series)
    0x00080031: 3,  # Series Time
    0x00080022: 3,  # Acquisition Date (General Image)
    0x00080032: 3,  # Acquisition Time
    0x0008002A: 3,  # Acquisition DateTime
    0x00080023: 2,  # Content Date (General Image, 2C: temporally related images)
    0x00080033: 2,  # Content Time
    0x00080080: 3,  # Institution Name (General Equipment)
    0x00080082: 3,  # Institution Code Sequence
    0x00081010: 3,  # Station Name
    0x00181000: 3,  # Device Serial Number
    0x00081070: 3,  # Operators' Name (General Series)
    0x00081072: 3,  # Operator Identification Sequence
    0x00081110: 3,  # Referenced Study Sequence (General Study)
    0x00081111: 3,  # Referenced Performed Procedure Step Sequence (General Series)
    0x00081140: 3,  # Referenced Image Sequence (General Image)
    0x00082112: 3,  # Source Image Sequence (General Image)
    0x00181030: 3,  # Protocol Name (General Series)
    0x00181400: 3,  # Acquisition Device Processing Description (CR/DX)
    0x00102203: 3,  # Patient's Sex Neutered (2C: animals only)
    0x00100020: 2,  # Patient ID (Patient)
    0x00180010: 2,  # Contrast/Bolus Agent (Contrast/Bolus, 2 when the module is present)
    0x0018700A: 3,  # Detector ID (DX Detector)
    0x0018700C: 3,  # Date of Last Detector Calibration
    0x0018700E: 3,  # Time of Last Detector Calibration
    0x00189516: 3,  # Start Acquisition DateTime
    0x00189517: 3,  # End Acquisition DateTime
    0x00400555: 3,  # Acquisition Context Sequence (3 in most image IODs)
    0x00321060: 3,  # Requested Procedure Description
}

#: SOP Class UID prefix -> overrides (longest prefix wins).
SOP_CLASS_TYPES: dict[str, dict[int, int]] = {
    # Enhanced CT/MR/PET/XA/US/MR Spectroscopy etc.: Multi-frame Functional Groups and
    # Enhanced General Equipment modules (PS3.3 C.7.6.16, C.7.5.2).
    "1.2.840.10008.5.1.4.1.1.2.1": {0x00080023: 1, 0x00080033: 1, 0x0008002A: 1, 0x00181000: 1},
    "1.2.840.10008.5.1.4.1.1.4.1": {0x00080023: 1, 0x00080033: 1, 0x0008002A: 1, 0x00181000: 1},
    "1.2.840.10008.5.1.4.1.1.128.1": {0x00080023: 1, 0x00080033: 1, 0x0008002A: 1, 0x00181000: 1},
    # SR documents: SR Document General module (PS3.3 C.17.2).
    "1.2.840.10008.5.1.4.1.1.88": {0x00080023: 1, 0x00080033: 1},
    # RT Plan: RT General Plan module (PS3.3 C.8.8.9).
    "1.2.840.10008.5.1.4.1.1.481.5": {0x300A0006: 2, 0x300A0007: 2},
    # RT Structure Set (PS3.3 C.8.8.5).
    "1.2.840.10008.5.1.4.1.1.481.3": {0x30060008: 2, 0x30060009: 2},
    # Presentation states (PS3.3 C.11.10): Content Creator's Name Type 2.
    "1.2.840.10008.5.1.4.1.1.11": {0x00700084: 2},
}

#: (sequence tag, tag) -> Type inside that sequence's items.
NESTED_TYPES: dict[tuple[int, int], int] = {
    (0x0040A073, 0x0040A075): 1,  # Verifying Observer Sequence > Verifying Observer Name
    (0x0040A073, 0x0040A030): 1,  # > Verification DateTime
    (0x0040A073, 0x0040A027): 1,  # > Verifying Organization
    (0x0040A073, 0x0040A088): 2,  # > Verifying Observer Identification Code Sequence
    (0x300A00B0, 0x300A00B2): 2,  # Beam Sequence > Treatment Machine Name
    (0x300A0230, 0x300A00B2): 2,  # Brachy Treatment Sequence (ion/brachy variants)
    (0x30060020, 0x30060026): 2,  # Structure Set ROI Sequence > ROI Name
    (0x30060080, 0x300600A6): 2,  # RT ROI Observations Sequence > ROI Interpreter
}


def attribute_type(sop_class_uid: str, parent: int | None, tag: int) -> int | None:
    """The Type of ``tag`` at this place in an instance of ``sop_class_uid``, or None."""
    if parent is not None:
        return NESTED_TYPES.get((parent, tag))
    best: dict[int, int] | None = None
    best_len = -1
    for prefix, types in SOP_CLASS_TYPES.items():
        matches = sop_class_uid == prefix or sop_class_uid.startswith(prefix + ".")
        if matches and tag in types and len(prefix) > best_len:
            best, best_len = types, len(prefix)
    if best is not None:
        return best[tag]
    return COMMON_TYPES.get(tag)


def resolve(code: str, type_: int | None) -> str:
    """A simple action code (D, Z, X, U) for a compound code and an attribute Type."""
    if code == "Z/D":
        return "Z" if type_ in (2, 3) else "D"
    if code == "X/Z":
        return "X" if type_ == 3 else "Z"
    if code == "X/D":
        return "X" if type_ == 3 else "D"
    if code == "X/Z/D":
        return {3: "X", 2: "Z"}.get(type_ or 0, "D")
    if code == "X/Z/U*":
        return {3: "X", 2: "Z"}.get(type_ or 0, "U")
    return code


#: Standard text attributes (PN LO LT SH ST UT UC) outside Table E.1-1 that describe the
#: acquisition, the device model or coded concepts, and are kept (then scrubbed of this
#: record's identifiers). Any other text attribute outside the table is removed.
ALLOWED_TEXT_KEYWORDS: frozenset[str] = frozenset(
    [
        "Manufacturer",
        "ManufacturerModelName",
        "SoftwareVersions",
        "PositionReferenceIndicator",
        "ConvolutionKernel",
        "FilterType",
        "RescaleType",
        "WindowCenterWidthExplanation",
        "CodeValue",
        "CodingSchemeDesignator",
        "CodingSchemeVersion",
        "CodeMeaning",
        "LongCodeValue",
        "CodingSchemeName",
        "CodingSchemeResponsibleOrganization",
        "ContextGroupExtensionFlag",
        "AcquisitionDeviceProcessingCode",
        "SequenceName",
        "ReceiveCoilName",
        "TransmitCoilName",
        "PulseSequenceName",
        "Radiopharmaceutical",
        "ReconstructionMethod",
        "TransducerData",
        "ProcessingFunction",
        "DetectorManufacturerName",
        "DetectorManufacturerModelName",
        "SecondaryCaptureDeviceManufacturer",
        "SecondaryCaptureDeviceManufacturerModelName",
        "SecondaryCaptureDeviceSoftwareVersions",
        "ContrastBolusRoute",
        "ContrastBolusIngredient",
        "BeamName",
        "RTPlanName",
        "ApplicationSetupName",
        "SourceIsotopeName",
        "ToleranceTableLabel",
        "ROIObservationLabel",
        "ROIGenerationAlgorithm",
        "DoseComment",
        "DoseReferenceDescription",
        "FractionGroupDescription",
        "CollimatorGridName",
        "MultiplexGroupLabel",
        "ChannelLabel",
        "ReferencedWaveformChannels",
        "AcquisitionContextDescription",
        "ImplementationVersionName",
        "PixelSpacingCalibrationDescription",
        "AnatomicStructure",
        "TextString",
        "LossyImageCompressionMethod",
        "ConceptNameCodeSequence",
        "ScanningSequence",
        "SeriesType",
        "CorrectedImage",
        "Units",
        "ReconstructionDiameter",
        "DataCollectionDiameter",
        "DeidentificationMethod",
        "FrameLabel",
        "FrameComments",
        "TableType",
        "ExposureControlMode",
        "ExposureControlModeDescription",
        "MRAcquisitionFrequencyEncodingSteps",
        "CardiacFramingType",
        "DetectorConfiguration",
        "ScanOptions",
        "DecayCorrection",
        "RandomsCorrectionMethod",
        "AttenuationCorrectionMethod",
        "ScatterCorrectionMethod",
        "DoseCalibrationFactor",
        "CountsSource",
    ]
)
