"""Signing keys: an admin's rotation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.auth.schemas import RotateOut
from services.auth.service.audit import Caller, require_admin

if TYPE_CHECKING:
    from services.auth.bootstrap import Auth


async def rotate(auth: Auth, caller: Caller) -> RotateOut:
    """A new signing key: new tokens use it; the keys it replaces stay in the JWKS until
    their tokens have expired."""
    await require_admin(auth, caller, "rotate signing keys")
    kid, previous = await auth.keyring.rotate()
    async with auth.uow(caller) as unit:
        unit.audit("key_rotated", subject=kid, previous=previous)
    return RotateOut(kid=kid, previous=previous)
