"""One series in curation: a curator's review, a manager's withdrawal."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from services.common.security import AuthenticatedPrincipal
from services.qc import queries, service
from services.qc.api.deps import QcDep
from services.qc.schemas import ReviewIn, SeriesOut, WithdrawIn, WithdrawOut

router = APIRouter(prefix="/api/qc/series", tags=["qc"])


@router.put("/{uid}/review", response_model=SeriesOut)
async def review(
    uid: str, body: ReviewIn, qc: QcDep, principal: AuthenticatedPrincipal
) -> SeriesOut:
    await service.review(qc, principal, uid, body.state)
    return await queries.one_series(qc.db, uid)


@router.post("/{uid}/withdraw", response_model=WithdrawOut)
async def withdraw(
    uid: str,
    qc: QcDep,
    principal: AuthenticatedPrincipal,
    body: Annotated[WithdrawIn | None, Body()] = None,
) -> WithdrawOut:
    deleted = await service.withdraw(qc, principal, uid, (body or WithdrawIn()).reason)
    return WithdrawOut(withdrawn=uid, deleted=deleted)
