"""The caller's own account: who they are, the data usage policy, their password and
their licences."""

from __future__ import annotations

from fastapi import APIRouter

from services.auth import queries
from services.auth.api.deps import AnyCallerDep, AuthDep, CallerDep
from services.auth.schemas import AcceptanceOut, PasswordChange, PolicyOut, UserOut
from services.auth.service import accounts, licences

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.get("/me", response_model=UserOut)
async def me(auth: AuthDep, caller: CallerDep) -> UserOut:
    return await queries.account(auth.db, caller.name, own=True)


@router.get("/policy", response_model=PolicyOut)
async def policy(auth: AuthDep, caller: AnyCallerDep) -> PolicyOut:
    """The data usage policy every user accepts once."""
    accepted = None
    if not caller.principal.anonymous:
        accepted = await queries.policy_accepted_at(auth.db, caller.name)
    return accounts.policy(accepted)


@router.post("/me/accept-policy", response_model=PolicyOut)
async def accept_policy(auth: AuthDep, caller: CallerDep) -> PolicyOut:
    """Accept the data usage policy; tokens issued from now on carry ``dup: true``."""
    return await accounts.accept_policy(auth, caller)


@router.post("/me/password", status_code=204)
async def change_password(body: PasswordChange, auth: AuthDep, caller: CallerDep) -> None:
    """Change one's own password. Wrong current passwords count towards the same
    lockout as failed logins: a stolen token must not become a guessing oracle."""
    await accounts.change_password(
        auth,
        caller,
        body.current_password.get_secret_value(),
        body.new_password.get_secret_value(),
    )


@router.get("/me/licences", response_model=list[AcceptanceOut])
async def my_licences(auth: AuthDep, caller: CallerDep) -> list[AcceptanceOut]:
    return await queries.own_licences(auth.db, caller.name)


@router.post("/me/licences/{licence_id}", response_model=AcceptanceOut)
async def accept_licence(licence_id: str, auth: AuthDep, caller: CallerDep) -> AcceptanceOut:
    """Accept a licence: open licences are approved at once; restricted ones are
    recorded as a request for an admin or a collection's manager to approve."""
    return await licences.accept(auth, caller, licence_id)
