"""The dependencies qc's routes name."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.common.app import provided
from services.qc.bootstrap import Qc

QcDep = Annotated[Qc, Depends(provided(Qc))]
