"""HTTP shapes of the download service's own API (the NBIA endpoints answer with files)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class DownloadOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    subject: str
    series_instance_uid: str
    sop_instance_uid: str | None
    kind: str
    bytes: int
    complete: bool
    at: datetime
