"""The dependencies download's routes name."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.common.app import provided
from services.download.bootstrap import Download

DownloadDep = Annotated[Download, Depends(provided(Download))]
