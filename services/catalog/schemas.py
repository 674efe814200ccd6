"""HTTP shapes of the catalog's own JSON API (/api/catalog), used by the `imarc` CLI.

The NBIA-compatible endpoints have no models here: their rows are flat objects whose
names and order are fixed by NBIA (see services/catalog/domain.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class LicenceOut(BaseModel):
    id: str
    name: str = ""
    url: str = ""


class CollectionSummary(BaseModel):
    name: str
    description: str = ""
    doi: str = ""
    access: str = "public"
    licence: LicenceOut
    patients: int = 0
    studies: int = 0
    series: int = 0
    images: int = 0
    size: int = 0
    last_released_at: datetime | None = None


class InstanceOut(BaseModel):
    sop_instance_uid: str
    instance_number: int | None = None
    key: str
    size: int
    sha256: str
    header: dict[str, Any] | None = None


class SeriesDetail(BaseModel):
    series_instance_uid: str
    study_instance_uid: str
    collection: str
    patient_id: str
    site: str | None = None
    modality: str | None = None
    series_description: str | None = None
    series_number: int | None = None
    series_date: str | None = None
    body_part_examined: str | None = None
    manufacturer: str | None = None
    manufacturer_model_name: str | None = None
    image_count: int
    file_size: int
    released_at: datetime
    licence: LicenceOut
    instances: list[InstanceOut]
