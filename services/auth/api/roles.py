"""An account's roles: given and taken away by admins, and by managers for submitter and
curator roles on their collections."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response

from services.auth import domain
from services.auth.api.deps import AuthDep, CallerDep
from services.auth.domain import Invalid
from services.auth.schemas import RoleIn, UserOut
from services.auth.service import access

router = APIRouter(prefix="/api/auth/users/{username}/roles", tags=["auth"])


@router.post("", response_model=UserOut)
async def grant_role(
    username: str, body: RoleIn, auth: AuthDep, caller: CallerDep, response: Response
) -> UserOut:
    """Give a role. Admins give any; managers give submitter and curator roles on
    the collections they manage. 201 when new, 200 when the account had it."""
    row = domain.role_row(body.role, body.collection, body.site)
    out, added = await access.grant_role(auth, caller, username, row)
    response.status_code = 201 if added else 200
    return out


@router.delete("", status_code=204)
async def revoke_role(
    username: str,
    auth: AuthDep,
    caller: CallerDep,
    role: str = "",
    collection: str = "",
    site: str = "",
    body: Annotated[RoleIn | None, Body()] = None,
) -> None:
    """Take a role away; the role is named in the query (``?role=&collection=&site=``)
    or in a JSON body like the one that gave it."""
    if body is None and not role:
        raise Invalid("name the role to take away (?role=...&collection=...)")
    row = (
        domain.role_row(body.role, body.collection, body.site)
        if body
        else domain.role_row(role, collection, site)
    )
    await access.revoke_role(auth, caller, username, row)
