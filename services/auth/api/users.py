"""Accounts: registration, and an admin listing, disabling, enabling and resetting them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.auth import domain, queries
from services.auth.api.deps import AnyCallerDep, AuthDep, CallerDep
from services.auth.schemas import PasswordReset, PasswordResetOut, UserCreate, UserOut
from services.auth.service import accounts
from services.auth.service.audit import require_admin

router = APIRouter(prefix="/api/auth/users", tags=["auth"])


@router.post("", response_model=UserOut, status_code=201)
async def register(body: UserCreate, auth: AuthDep, caller: AnyCallerDep) -> UserOut:
    """Self-registration (role user); an admin may also give roles."""
    return await accounts.register(
        auth,
        caller,
        username=body.username,
        password=body.password.get_secret_value(),
        email=body.email,
        display_name=body.name,
        roles=[(r.role, r.collection, r.site) for r in body.roles],
    )


@router.get("", response_model=list[UserOut])
async def list_users(
    auth: AuthDep,
    caller: CallerDep,
    q: str = "",
    kind: Literal["user", "client"] = "user",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[UserOut]:
    await require_admin(auth, caller, "list accounts")
    return await queries.accounts(auth.db, kind=kind, q=q, limit=limit)


@router.get("/{username}", response_model=UserOut)
async def get_user(username: str, auth: AuthDep, caller: CallerDep) -> UserOut:
    name = domain.normalise_username(username)
    if name != caller.name:
        await require_admin(auth, caller, "see other accounts")
    return await queries.account(auth.db, name)


@router.post("/{username}/disable", response_model=UserOut)
async def disable_user(username: str, auth: AuthDep, caller: CallerDep) -> UserOut:
    """Disable an account: it cannot log in and its tokens stop working at once."""
    return await accounts.set_disabled(auth, caller, username, True)


@router.post("/{username}/enable", response_model=UserOut)
async def enable_user(username: str, auth: AuthDep, caller: CallerDep) -> UserOut:
    return await accounts.set_disabled(auth, caller, username, False)


@router.post("/{username}/password", response_model=PasswordResetOut)
async def reset_password(
    username: str, auth: AuthDep, caller: CallerDep, body: PasswordReset | None = None
) -> PasswordResetOut:
    """An admin sets a new password (or gets a generated one, shown once); the
    account's sessions end."""
    given = body.password.get_secret_value() if body and body.password else None
    name, generated = await accounts.reset_password(auth, caller, username, given)
    return PasswordResetOut(username=name, password=generated)
