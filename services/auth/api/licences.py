"""Licences: public to read, changed by admins."""

from __future__ import annotations

from fastapi import APIRouter

from services.auth import queries
from services.auth.api.deps import AuthDep, CallerDep
from services.auth.schemas import LicenceIn, LicenceOut, LicenceUpdate
from services.auth.service import licences

router = APIRouter(prefix="/api/auth/licences", tags=["auth"])


@router.get("", response_model=list[LicenceOut])
async def list_licences(auth: AuthDep) -> list[LicenceOut]:
    return await queries.licences(auth.db)


@router.get("/{licence_id}", response_model=LicenceOut)
async def get_licence(licence_id: str, auth: AuthDep) -> LicenceOut:
    return await queries.licence(auth.db, licence_id)


@router.post("", response_model=LicenceOut, status_code=201)
async def create_licence(body: LicenceIn, auth: AuthDep, caller: CallerDep) -> LicenceOut:
    return await licences.create(auth, caller, body.model_dump())


@router.patch("/{licence_id}", response_model=LicenceOut)
async def update_licence(
    licence_id: str, body: LicenceUpdate, auth: AuthDep, caller: CallerDep
) -> LicenceOut:
    return await licences.update(auth, caller, licence_id, body.model_dump(exclude_none=True))


@router.delete("/{licence_id}", status_code=204)
async def delete_licence(licence_id: str, auth: AuthDep, caller: CallerDep) -> None:
    await licences.delete(auth, caller, licence_id)
