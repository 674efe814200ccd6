"""An account's grants of access to limited collections (admins, and the collection's
managers)."""

from __future__ import annotations

from fastapi import APIRouter

from services.auth.api.deps import AuthDep, CallerDep
from services.auth.schemas import GrantIn, GrantOut
from services.auth.service import access

router = APIRouter(prefix="/api/auth/users/{username}/grants", tags=["auth"])


@router.post("", response_model=GrantOut, status_code=201)
async def add_grant(username: str, body: GrantIn, auth: AuthDep, caller: CallerDep) -> GrantOut:
    """Grant access to a limited collection (admin, or the collection's manager)."""
    return await access.add_grant(auth, caller, username, body.collection, body.expires_at)


@router.delete("/{collection}", status_code=204)
async def remove_grant(username: str, collection: str, auth: AuthDep, caller: CallerDep) -> None:
    await access.remove_grant(auth, caller, username, collection)
