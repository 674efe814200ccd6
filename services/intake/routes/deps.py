"""The dependencies intake's routes name."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.common.app import provided
from services.intake.bootstrap import Intake

IntakeDep = Annotated[Intake, Depends(provided(Intake))]
