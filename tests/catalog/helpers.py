"""Build series.published events from real DICOM files, and deliver events to the catalog."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydicom import Dataset, examples
from pydicom.uid import generate_uid

from services.common.bus import topic_matches
from services.common.events import (
    CollectionUpdated,
    Event,
    Licence,
    PublishedInstance,
    SeriesPublished,
    SeriesWithdrawn,
)
from tests.harness import Platform

CC_BY = Licence(
    id="cc-by-4.0", name="CC BY 4.0", url="https://creativecommons.org/licenses/by/4.0/"
)
TCIA_RESTRICTED = Licence(
    id="tcia-restricted", name="TCIA Restricted", url="https://www.cancerimagingarchive.net/r"
)


def collection(
    name: str = "Demo-CT",
    *,
    licence: Licence = CC_BY,
    access: Literal["public", "limited"] = "public",
    description: str = "<p>A demo collection</p>",
    doi: str = "10.7937/demo.ct",
) -> CollectionUpdated:
    return CollectionUpdated(
        name=name,
        licence=licence,
        access=access,
        description=description,
        doi=doi,  # type: ignore[arg-type]
    )


def header(ds: Dataset) -> dict[str, Any]:
    """The DICOM JSON of a dataset with its file meta, bulk data dropped (as deid sends it)."""
    ds = copy.deepcopy(ds)
    if "PixelData" in ds:
        del ds.PixelData
    out: dict[str, Any] = {}
    if getattr(ds, "file_meta", None) is not None:
        out.update(ds.file_meta.to_json_dict())
    out.update(ds.to_json_dict())
    return {k: v for k, v in out.items() if "InlineBinary" not in v and "BulkDataURI" not in v}


def series_of(
    base: Dataset,
    n: int = 1,
    *,
    patient_id: str = "DEMO-0001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    **attrs: Any,
) -> list[Dataset]:
    """``n`` instances of one series cloned from a real dataset, with fresh UIDs."""
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    out = []
    for i in range(n):
        ds = copy.deepcopy(base)
        ds.PatientID = patient_id
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        for k, v in attrs.items():
            setattr(ds, k, v)
        out.append(ds)
    return out


def ct(n: int = 1, **kw: Any) -> list[Dataset]:
    return series_of(examples.ct, n, **kw)


def mr(n: int = 1, **kw: Any) -> list[Dataset]:
    return series_of(examples.mr, n, **kw)


def published(
    datasets: Sequence[Dataset],
    coll: CollectionUpdated | None = None,
    *,
    site: str = "Site-A",
    released_at: datetime | None = None,
    size: int = 1000,
) -> Event:
    coll = coll or collection()
    first = datasets[0]
    instances = [
        PublishedInstance(
            sop_instance_uid=ds.SOPInstanceUID,
            key=f"{coll.name}/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm",
            size=size + i,
            sha256=f"{i:064x}",
            header=header(ds),
        )
        for i, ds in enumerate(datasets)
    ]
    return SeriesPublished(
        collection=coll,
        site=site,
        patient_id=first.PatientID,
        study_instance_uid=first.StudyInstanceUID,
        series_instance_uid=first.SeriesInstanceUID,
        released_at=released_at or datetime.now(UTC),
        instances=instances,
    ).event("/site-a/qc", subject=first.SeriesInstanceUID)


def withdrawn(coll: str, series_uid: str) -> Event:
    return SeriesWithdrawn(collection=coll, series_instance_uid=series_uid, reason="test").event(
        "/site-a/qc", subject=series_uid
    )


async def deliver(p: Platform, *events: Event) -> None:
    """Apply ``events`` in order through the consumers the catalog's bootstrap subscribes,
    each in its unit of work with the inbox record, as the bus delivers them (tests/e2e
    go through the real buses)."""
    (spec,) = [s for s in p.runtime.specs if s.name == "catalog"]
    messaging = p.runtime.contexts["catalog"].messaging
    consumers = spec.consumers(p.runtime.deps["catalog"])
    for event in events:
        bound = [c for c in consumers if any(topic_matches(t, event.type) for t in c.patterns)]
        assert bound, f"the catalog consumes no {event.type}"
        for c in bound:
            assert c.handler is not None
            await messaging.idempotent(c.queue, c.handler)(event)
