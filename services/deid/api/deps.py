"""The dependencies deid's routes name, and the role checks they share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.common.app import provided
from services.common.security import Principal, forbid
from services.deid.bootstrap import Deid

DeidDep = Annotated[Deid, Depends(provided(Deid))]


def may_manage(principal: Principal, collection: str) -> None:
    if not principal.can_manage(collection):
        raise forbid(f"manage the de-identification of {collection}")


def may_curate(principal: Principal, collection: str) -> None:
    if not principal.can_curate(collection):
        raise forbid(f"review held instances of {collection}")
