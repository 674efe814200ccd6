"""Accounts: registration, the bootstrap admin, what a token says of an account, an
admin disabling, enabling or resetting one, and a user's own policy and password."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from services.auth import crypto, domain, queries
from services.auth.domain import Conflict, Forbidden, Holder, Invalid, RoleRow
from services.auth.models import Account, CollectionGrant, LicenceAcceptance
from services.auth.schemas import PolicyOut, UserOut
from services.auth.service import throttle
from services.auth.service.access import add_role
from services.auth.service.audit import Caller, denied, require_admin
from services.auth.tokens import revoke_subject_sessions, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from services.auth.bootstrap import Auth


async def create_account(
    s: AsyncSession,
    *,
    name: str,
    kind: str,
    secret_hash: str,
    created_by: str,
    now: datetime,
    roles: Iterable[RoleRow] = (),
    email: str = "",
    display_name: str = "",
    policy_accepted: bool = False,
) -> Account:
    if await queries.find_account(s, name) is not None:
        raise Conflict(f"the name {name!r} is taken; choose another")
    acc = Account(
        name=name,
        kind=kind,
        email=email,
        display_name=display_name,
        secret_hash=secret_hash,
        disabled=False,
        policy_accepted_at=now if policy_accepted else None,
        created_at=now,
        created_by=created_by,
        secret_changed_at=now,
    )
    s.add(acc)
    await s.flush()
    for row in set(roles):
        await add_role(s, acc, row, by=created_by, now=now)
    return acc


async def holder_of(s: AsyncSession, acc: Account, now: datetime) -> Holder:
    """Everything a token for ``acc`` says, as of ``now``."""
    accepted = await s.execute(
        select(
            LicenceAcceptance.licence_id,
            LicenceAcceptance.status,
            LicenceAcceptance.expires_at,
            LicenceAcceptance.collections,
        ).where(LicenceAcceptance.account_id == acc.id)
    )
    active = [
        (lic, colls)
        for lic, status, exp, colls in accepted
        if domain.acceptance_active(status, exp, now)
    ]
    grants = await s.execute(
        select(CollectionGrant.collection, CollectionGrant.expires_at).where(
            CollectionGrant.account_id == acc.id
        )
    )
    return Holder(
        name=acc.name,
        rows=tuple(await queries.role_rows(s, acc.id)),
        licences=frozenset(lic for lic, colls in active if colls is None),
        licence_scopes={lic: frozenset(colls) for lic, colls in active if colls},
        grants=frozenset(c for c, exp in grants if domain.grant_active(exp, now)),
        policy_accepted=acc.policy_accepted_at is not None,
    )


async def ensure_admin(auth: Auth, username: str, password: str) -> None:
    """Create the bootstrap admin from settings, or bring it back in line with them
    (password, admin role, enabled) at every start."""
    now = utcnow()
    async with auth.db.session() as s:
        existing = await queries.find_account(s, username)
    if existing is not None:
        ok, _ = await asyncio.to_thread(crypto.verify_secret, existing.secret_hash, password)
        new_hash = None if ok else await asyncio.to_thread(crypto.hash_secret, password)
    else:
        new_hash = await asyncio.to_thread(crypto.hash_secret, password)
    async with auth.uow() as unit:
        s = unit.session
        acc = await queries.find_account(s, username)
        if acc is None:
            assert new_hash is not None
            acc = await create_account(
                s,
                name=username,
                kind="user",
                secret_hash=new_hash,
                created_by="bootstrap",
                now=now,
                policy_accepted=True,
            )
            unit.audit("user_created", actor="bootstrap", subject=username, roles=["admin"])
        else:
            if new_hash is not None:
                acc.secret_hash, acc.secret_changed_at = new_hash, now
            acc.disabled = False
        for row in (RoleRow("admin"), RoleRow("user")):
            await add_role(s, acc, row, by="bootstrap", now=now)


# -- registration and administration ---------------------------------------------------


async def register(
    auth: Auth,
    caller: Caller,
    *,
    username: str,
    password: str,
    email: str = "",
    display_name: str = "",
    roles: Sequence[tuple[str, str | None, str | None]] = (),
) -> UserOut:
    """Self-registration (role user); an admin may also give roles."""
    name = domain.normalise_username(username)
    if roles and not caller.principal.is_admin:
        raise await denied(auth, caller, "create accounts with roles")
    for problem in (
        domain.username_problem(name),
        domain.password_problem(password, name),
        domain.email_problem(email),
    ):
        if problem:
            raise Invalid(problem)
    rows = [RoleRow("user"), *(domain.role_row(*r) for r in roles)]
    secret_hash = await asyncio.to_thread(crypto.hash_secret, password)
    async with auth.uow(caller) as unit:
        by = "self" if caller.principal.anonymous else caller.name
        acc = await create_account(
            unit.session,
            name=name,
            kind="user",
            secret_hash=secret_hash,
            created_by=by,
            now=utcnow(),
            roles=rows,
            email=email.strip(),
            display_name=display_name.strip(),
        )
        unit.audit(
            "user_created", actor=by, subject=name, roles=[r.role for r in rows if r.role != "user"]
        )
        return await queries.user_view(unit.session, acc)


async def set_disabled(auth: Auth, caller: Caller, username: str, disabled: bool) -> UserOut:
    """Disable an account (it cannot log in, its tokens stop working at once) or enable it."""
    await require_admin(auth, caller, "disable or enable accounts")
    name = domain.normalise_username(username)
    if disabled and name == caller.name:
        raise Conflict("you cannot disable your own account; ask another admin")
    async with auth.uow(caller) as unit:
        acc = await queries.get_account(unit.session, name)
        acc.disabled = disabled
        if disabled:
            await revoke_subject_sessions(unit.session, acc.name, utcnow())
        unit.audit("account_disabled" if disabled else "account_enabled", subject=acc.name)
        out = await queries.user_view(unit.session, acc)
    if disabled:
        auth.revocations.note("sub", acc.name)
    else:
        auth.revocations.forget_disabled(acc.name)
    return out


async def reset_password(
    auth: Auth, caller: Caller, username: str, given: str | None
) -> tuple[str, str | None]:
    """An admin sets a new password, or has one generated (returned, to be shown once);
    the account's sessions end. Returns the account name and the generated password."""
    await require_admin(auth, caller, "reset passwords")
    name = domain.normalise_username(username)
    password = given or crypto.new_password()
    if given and (problem := domain.password_problem(given, name)):
        raise Invalid(problem)
    new_hash = await asyncio.to_thread(crypto.hash_secret, password)
    async with auth.uow(caller) as unit:
        acc = await queries.get_account(unit.session, name)
        if acc.kind != "user":
            raise Conflict("a client has a secret, not a password; create a new client instead")
        acc.secret_hash, acc.secret_changed_at = new_hash, utcnow()
        families = await revoke_subject_sessions(unit.session, acc.name, utcnow())
        unit.audit("password_reset", subject=acc.name, generated=given is None)
    for f in families:
        auth.revocations.note("sid", f)
    return name, None if given else password


# -- one's own account -----------------------------------------------------------------


def policy(accepted_at: datetime | None) -> PolicyOut:
    return PolicyOut(
        version=domain.POLICY_VERSION, text=domain.DATA_USAGE_POLICY, accepted_at=accepted_at
    )


async def accept_policy(auth: Auth, caller: Caller) -> PolicyOut:
    """Accept the data usage policy; tokens issued from now on carry ``dup: true``."""
    async with auth.uow(caller) as unit:
        acc = await queries.own_account(unit.session, caller.name)
        if acc.policy_accepted_at is None:
            acc.policy_accepted_at = utcnow()
            unit.audit("policy_accepted", subject=acc.name, version=domain.POLICY_VERSION)
        return policy(acc.policy_accepted_at)


async def change_password(auth: Auth, caller: Caller, current: str, new: str) -> None:
    """Change one's own password. Wrong current passwords count towards the same
    lockout as failed logins: a stolen token must not become a guessing oracle."""
    now = utcnow()
    attempt = throttle.Attempt("user", caller.name, caller.ip)
    async with auth.db.session() as s:
        acc = await queries.own_account(s, caller.name)
        locked = await throttle.locked_until(s, attempt, now)
    if locked is not None:
        raise domain.Throttled(domain.retry_after(locked, now))
    if problem := domain.password_problem(new, acc.name):
        raise Invalid(problem)
    ok, _ = await asyncio.to_thread(crypto.verify_secret, acc.secret_hash, current)
    new_hash = await asyncio.to_thread(crypto.hash_secret, new) if ok else ""
    async with auth.uow(caller) as unit:
        acc = await queries.own_account(unit.session, caller.name)
        if ok:
            acc.secret_hash, acc.secret_changed_at = new_hash, utcnow()
            await throttle.record_success(unit.session, attempt, utcnow())
        else:
            await throttle.record_failure(unit.session, attempt, utcnow())
        unit.audit("password_changed" if ok else "password_change_failed", subject=acc.name)
    if not ok:
        raise Forbidden("the current password is wrong; try again")
