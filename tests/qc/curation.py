"""Builds what intake and deid would hand to qc: real DICOM put into the curation zone
and the events that describe it (shared by the qc and download tests)."""

from __future__ import annotations

import copy
import io
import uuid
from dataclasses import dataclass
from datetime import datetime

import pydicom
import pydicom.examples
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from services.common.dicom_json import header_json
from services.common.events import (
    CollectionUpdated,
    Event,
    InstanceDeidentified,
    InstanceHeld,
    InstanceReceived,
    Licence,
    ObjectRef,
)
from services.common.store import ObjectStore

INTAKE = "/site-a/intake"
DEID = "/site-a/deid"


def collection_event(
    name: str = "Demo-CT",
    access: str = "public",
    licence: Licence | None = None,
) -> Event:
    lic = licence or Licence(
        id="cc-by-4.0", name="CC BY 4.0", url="https://creativecommons.org/licenses/by/4.0/"
    )
    return CollectionUpdated(
        name=name,
        licence=lic,
        access=access,  # type: ignore[arg-type]
        doi=f"10.99999/{name.lower()}",
        citation=f"Imaging Group (2026). {name} [Data set]. imarc.",
        data_usage_policy="https://archive.example.org/data-usage-policy",
    ).event(INTAKE, subject=name)


def dicom_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


@dataclass
class Curated:
    """One de-identified instance in the curation zone."""

    instance_id: str
    collection: str
    ds: Dataset
    data: bytes
    key: str
    sha256: str = ""

    @property
    def sop(self) -> str:
        return str(self.ds.SOPInstanceUID)

    @property
    def series(self) -> str:
        return str(self.ds.SeriesInstanceUID)

    def received(self, at: datetime | None = None) -> Event:
        ev = InstanceReceived(
            instance_id=self.instance_id,
            collection=self.collection,
            site="site-1",
            filename=f"{self.instance_id}.dcm",
            object=ObjectRef(
                zone="quarantine",
                key=f"{self.collection}/{self.instance_id}.dcm",
                size=len(self.data),
                sha256=self.sha256,
            ),
        ).event(INTAKE, subject=self.instance_id)
        return ev if at is None else ev.model_copy(update={"time": at})

    def held(
        self,
        stage: str = "deid",
        reason: str = "burned-in annotation suspected",
        at: datetime | None = None,
    ) -> Event:
        ev = InstanceHeld(
            instance_id=self.instance_id,
            collection=self.collection,
            site="site-1",
            filename=f"{self.instance_id}.dcm",
            stage=stage,
            reason=reason,  # type: ignore[arg-type]
        ).event(DEID if stage == "deid" else INTAKE, subject=self.instance_id)
        return ev if at is None else ev.model_copy(update={"time": at})

    def deidentified(self, at: datetime | None = None) -> Event:
        ds = self.ds
        ev = InstanceDeidentified(
            instance_id=self.instance_id,
            collection=self.collection,
            site="site-1",
            object=ObjectRef(
                zone="curation", key=self.key, size=len(self.data), sha256=self.sha256
            ),
            patient_id=str(ds.PatientID),
            study_instance_uid=str(ds.StudyInstanceUID),
            series_instance_uid=str(ds.SeriesInstanceUID),
            sop_instance_uid=self.sop,
            sop_class_uid=str(ds.SOPClassUID),
            modality=str(ds.Modality),
            header=header_json(ds),
        ).event(DEID, subject=self.instance_id)
        return ev if at is None else ev.model_copy(update={"time": at})


def make_series(
    n: int,
    *,
    collection: str = "Demo-CT",
    patient: str = "DEMO-CT-0001",
    study_uid: str | None = None,
    acquisitions: int = 1,
    base: Dataset | None = None,
) -> list[Curated]:
    """``n`` instances of one series built from pydicom's CT example, numbered 1..n and
    spread evenly over ``acquisitions`` AcquisitionNumbers."""
    template = base if base is not None else pydicom.examples.ct
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    out: list[Curated] = []
    for i in range(n):
        ds = copy.deepcopy(template)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.PatientID = ds.PatientName = patient
        ds.InstanceNumber = i + 1
        ds.AcquisitionNumber = 1 + i * acquisitions // n
        key = f"{collection}/{study_uid}/{series_uid}/{ds.SOPInstanceUID}.dcm"
        out.append(Curated(uuid.uuid4().hex, collection, ds, dicom_bytes(ds), key))
    return out


async def put_curated(store: ObjectStore, items: list[Curated]) -> None:
    for c in items:
        c.sha256 = (await store.put("curation", c.key, c.data)).sha256
