"""HTTP shapes of the download service's own API (the NBIA endpoints answer with files)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DownloadOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    subject: str
    series_instance_uid: str
    sop_instance_uid: str | None
    kind: str
    bytes: int
    complete: bool
    at: datetime


class SeriesSearch(BaseModel):
    """Published series by collection, patient, study, modality or body part (whole
    values; text case-insensitive). Only series the caller may download are found."""

    collection: str | None = None
    patient_id: str | None = None
    study_instance_uid: str | None = None
    modality: str | None = None
    body_part: str | None = None

    @model_validator(mode="after")
    def _some(self) -> SeriesSearch:
        if not any(self.model_dump().values()):
            raise ValueError(
                "give at least one of collection, patient_id, study_instance_uid, modality "
                "or body_part"
            )
        return self


class BasketIn(BaseModel):
    series: list[str] = Field(default_factory=list, description="SeriesInstanceUIDs, any number")
    search: SeriesSearch | None = Field(None, description="or the series a search finds")

    @model_validator(mode="after")
    def _one(self) -> BasketIn:
        if bool(self.series) == (self.search is not None):
            raise ValueError("give either series (a list of SeriesInstanceUIDs) or a search")
        return self


class BasketOut(BaseModel):
    id: str
    series: int = Field(description="number of series in the basket")
    manifest_url: str = Field(description="the basket as an NBIA Data Retriever manifest")
    manifest: str = Field(description="the manifest itself (.tcia)")


class FilesIn(BaseModel):
    series: list[str] = Field(max_length=5_000, description="SeriesInstanceUIDs")


class FileOut(BaseModel):
    name: str
    sop_instance_uid: str
    size: int
    sha256: str


class SeriesFilesOut(BaseModel):
    series_instance_uid: str
    collection: str
    patient_id: str
    study_instance_uid: str
    files: list[FileOut]


class FilesOut(BaseModel):
    series: list[SeriesFilesOut]
    unavailable: list[str] = Field(
        description="series that are not published, were withdrawn, or are restricted to "
        "users you are not"
    )
    notices: dict[str, dict[str, str]] = Field(
        description="per collection: the LICENSE and CITATION every copy carries"
    )


class CollectionMonthUsage(BaseModel):
    collection: str
    month: str = Field(description="YYYY-MM (UTC)")
    series_downloads: int = Field(description="complete downloads of a whole series")
    image_downloads: int = Field(description="complete downloads of single images")
    bytes: int = Field(description="bytes of DICOM sent, partial downloads included")


class MonthUsers(BaseModel):
    month: str = Field(description="YYYY-MM (UTC)")
    users: int = Field(description="distinct logged-in accounts that downloaded")
    anonymous_downloads: int = Field(description="downloads without a login")


class UsageOut(BaseModel):
    """Downloads by collection and month (the figures TCIA reports monthly)."""

    since: str
    until: str
    collections: list[CollectionMonthUsage]
    users: list[MonthUsers] = Field(
        description="distinct downloading users by month (admins only; empty otherwise)"
    )
