"""The record's own identifiers (names, IDs, dates, UIDs), read before de-identification,
which Clean Descriptors removes from kept text wherever they are written."""

from __future__ import annotations

from pydicom.datadict import DicomDictionary, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from .actions import Actions, _as_text, _is_well_known_uid

#: IDs (beyond every PN, DA, DT and UI value) that Clean Descriptors removes from text.
_ID_KEYWORDS = (
    "PatientID",
    "OtherPatientIDs",
    "AccessionNumber",
    "MedicalRecordLocator",
    "AdmissionID",
    "ClinicalTrialSubjectID",
    "PatientTelephoneNumbers",
)
_ID_TAGS = frozenset(t for t in (tag_for_keyword(k) for k in _ID_KEYWORDS) if t is not None)
#: Sequences whose items' identifiers are the record's own too (one level down).
_IDENTIFYING_SEQUENCES = frozenset(
    t
    for t in (
        tag_for_keyword(k)
        for k in (
            "OtherPatientIDsSequence",
            "ReferencedImageSequence",
            "SourceImageSequence",
            "ReferencedStudySequence",
            "ReferencedSeriesSequence",
            "ReferencedPatientSequence",
            "ReferencedPerformedProcedureStepSequence",
        )
    )
    if t is not None
)


_WANTED_VRS = frozenset({"PN", "DA", "DT", "UI", "SQ"})


class Identifiers:
    """The record's own names, IDs, dates and UIDs, which kept text must not repeat."""

    __slots__ = ("dates", "ids", "names", "uids")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.ids: list[str] = []
        self.dates: list[str] = []
        self.uids: list[str] = []

    def collect(self, ds: Dataset, depth: int = 0) -> Identifiers:
        for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset yields elements
            group = tag >> 16
            if group & 1 or group in (0x0002, 0x7FE0):
                continue
            entry = DicomDictionary.get(tag)
            if entry is not None and entry[0] not in _WANTED_VRS and tag not in _ID_TAGS:
                continue  # decided from the dictionary, without reading the element
            raw = ds.get_item(tag)
            vr = Actions.vr_of(tag, raw)
            if vr == "SQ":
                if depth == 0 and tag in _IDENTIFYING_SEQUENCES:
                    elem = Actions.element(ds, tag)
                    for item in elem.value if elem is not None else ():
                        self.collect(item, depth + 1)
                continue
            if vr not in _WANTED_VRS and tag not in _ID_TAGS:
                continue
            if vr != "PN" and isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
                # ASCII by definition (DA, DT, UI) or an ID: read without converting.
                values = raw.value.decode("latin-1").rstrip("\x00 ").split("\\")
            else:
                elem = Actions.element(ds, tag)
                values = [
                    v
                    for part in _as_text(None if elem is None else elem.value)
                    for v in part.split("\\")
                ]
            if vr == "PN":
                self.names += values
            elif vr == "DA":
                self.dates += values
            elif vr == "DT":
                self.dates += [v.strip()[:8] for v in values]
            elif vr == "UI":
                self.uids += [v.strip() for v in values if not _is_well_known_uid(v.strip())]
            else:
                self.ids += values
        return self
