"""Signing keys: listed and rotated by admins."""

from __future__ import annotations

from fastapi import APIRouter

from services.auth import queries
from services.auth.api.deps import AuthDep, CallerDep
from services.auth.schemas import KeyOut, RotateOut
from services.auth.service import keys
from services.auth.service.audit import require_admin

router = APIRouter(prefix="/api/auth/keys", tags=["auth"])


@router.get("", response_model=list[KeyOut])
async def list_keys(auth: AuthDep, caller: CallerDep) -> list[KeyOut]:
    await require_admin(auth, caller, "see signing keys")
    return [queries.key_out(k) for k in await auth.keyring.keys()]


@router.post("/rotate", response_model=RotateOut)
async def rotate_keys(auth: AuthDep, caller: CallerDep) -> RotateOut:
    """A new signing key: new tokens use it; every earlier key stays in the JWKS until
    the tokens it signed have expired."""
    return await keys.rotate(auth, caller)
