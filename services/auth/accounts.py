"""Database work on accounts, roles, grants, licences, throttling and the audit log.

Each function runs inside the caller's transaction (an ``AsyncSession`` in ``begin()``);
refusals a user can meet are ``HTTPException`` with one sentence saying what to do.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from fastapi import HTTPException
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth import crypto
from services.auth.domain import (
    SEED_LICENCES,
    Holder,
    RoleRow,
    ThrottlePolicy,
    acceptance_active,
    failures_after_one_more,
    grant_active,
    lockout_seconds,
)
from services.auth.models import (
    Account,
    AuditEntry,
    Collection,
    CollectionGrant,
    Licence,
    LicenceAcceptance,
    LoginFailure,
    RoleAssignment,
)
from services.auth.tokens import utcnow
from services.common.db import Database
from services.common.events import Event, LicenceUpdated

log = logging.getLogger("imarc.auth")


# -- accounts ------------------------------------------------------------------------


async def find_account(s: AsyncSession, name: str, kind: str | None = None) -> Account | None:
    q = select(Account).where(Account.name == name)
    if kind is not None:
        q = q.where(Account.kind == kind)
    return (await s.scalars(q)).one_or_none()


async def get_account(s: AsyncSession, name: str) -> Account:
    acc = await find_account(s, name)
    if acc is None:
        raise HTTPException(404, f"there is no account {name!r}; check the name")
    return acc


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
    if await find_account(s, name) is not None:
        raise HTTPException(409, f"the name {name!r} is taken; choose another")
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


async def role_rows(s: AsyncSession, account_id: int) -> list[RoleRow]:
    rows = await s.execute(
        select(RoleAssignment.role, RoleAssignment.collection, RoleAssignment.site).where(
            RoleAssignment.account_id == account_id
        )
    )
    return sorted(RoleRow(r, c, site) for r, c, site in rows)


async def holder_of(s: AsyncSession, acc: Account, now: datetime) -> Holder:
    """Everything a token for ``acc`` says, as of ``now``."""
    accepted = await s.execute(
        select(
            LicenceAcceptance.licence_id, LicenceAcceptance.status, LicenceAcceptance.expires_at
        ).where(LicenceAcceptance.account_id == acc.id)
    )
    grants = await s.execute(
        select(CollectionGrant.collection, CollectionGrant.expires_at).where(
            CollectionGrant.account_id == acc.id
        )
    )
    return Holder(
        name=acc.name,
        rows=tuple(await role_rows(s, acc.id)),
        licences=frozenset(
            lic for lic, status, exp in accepted if acceptance_active(status, exp, now)
        ),
        grants=frozenset(c for c, exp in grants if grant_active(exp, now)),
        policy_accepted=acc.policy_accepted_at is not None,
    )


async def add_role(s: AsyncSession, acc: Account, row: RoleRow, *, by: str, now: datetime) -> bool:
    exists = await s.scalar(
        select(RoleAssignment.id).where(
            RoleAssignment.account_id == acc.id,
            RoleAssignment.role == row.role,
            RoleAssignment.collection == row.collection,
            RoleAssignment.site == row.site,
        )
    )
    if exists is not None:
        return False
    s.add(
        RoleAssignment(
            account_id=acc.id,
            role=row.role,
            collection=row.collection,
            site=row.site,
            granted_by=by,
            granted_at=now,
        )
    )
    return True


async def remove_role(s: AsyncSession, acc: Account, row: RoleRow) -> bool:
    result = await s.execute(
        delete(RoleAssignment).where(
            RoleAssignment.account_id == acc.id,
            RoleAssignment.role == row.role,
            RoleAssignment.collection == row.collection,
            RoleAssignment.site == row.site,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def set_grant(
    s: AsyncSession,
    acc: Account,
    collection: str,
    *,
    by: str,
    now: datetime,
    expires_at: datetime | None,
) -> CollectionGrant:
    grant = (
        await s.scalars(
            select(CollectionGrant).where(
                CollectionGrant.account_id == acc.id, CollectionGrant.collection == collection
            )
        )
    ).one_or_none()
    if grant is None:
        grant = CollectionGrant(account_id=acc.id, collection=collection)
        s.add(grant)
    grant.granted_by, grant.granted_at, grant.expires_at = by, now, expires_at
    return grant


async def remove_grant(s: AsyncSession, acc: Account, collection: str) -> bool:
    result = await s.execute(
        delete(CollectionGrant).where(
            CollectionGrant.account_id == acc.id, CollectionGrant.collection == collection
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def grants_of(s: AsyncSession, account_id: int) -> list[CollectionGrant]:
    return list(
        await s.scalars(
            select(CollectionGrant)
            .where(CollectionGrant.account_id == account_id)
            .order_by(CollectionGrant.collection)
        )
    )


# -- licences ------------------------------------------------------------------------


async def get_licence(s: AsyncSession, licence_id: str) -> Licence:
    lic = await s.get(Licence, licence_id)
    if lic is None:
        raise HTTPException(
            404, f"there is no licence {licence_id!r}; GET /api/auth/licences lists them"
        )
    return lic


async def seed_licences(s: AsyncSession, now: datetime) -> list[Licence]:
    """The standard licences, at first start (when the table is empty); returns those
    added."""
    if await s.scalar(select(func.count()).select_from(Licence)):
        return []
    seeded = [
        Licence(
            id=seed.id,
            name=seed.name,
            url=seed.url,
            text=seed.text,
            commercial_use=seed.commercial_use,
            requires_approval=seed.requires_approval,
            created_at=now,
            updated_at=now,
        )
        for seed in SEED_LICENCES
    ]
    s.add_all(seeded)
    return seeded


def licence_updated(lic: Licence, source: str, *, deleted: bool = False) -> Event:
    """The ``licence.updated`` event that tells other services (intake) of a licence's
    current id, name and URL, or that it was deleted. Emit it in the transaction that
    changed the row."""
    return LicenceUpdated(
        id=lic.id,
        name=lic.name,
        url=lic.url,
        commercial_use=lic.commercial_use,
        requires_approval=lic.requires_approval,
        deleted=deleted,
    ).event(source, subject=lic.id)


async def acceptance(s: AsyncSession, account_id: int, licence_id: str) -> LicenceAcceptance | None:
    return (
        await s.scalars(
            select(LicenceAcceptance).where(
                LicenceAcceptance.account_id == account_id,
                LicenceAcceptance.licence_id == licence_id,
            )
        )
    ).one_or_none()


async def request_licence(
    s: AsyncSession, acc: Account, lic: Licence, now: datetime
) -> tuple[LicenceAcceptance, bool]:
    """The account accepts a licence: open licences are approved at once (self-approved);
    restricted ones wait for an admin or a manager. An approved, unexpired acceptance
    is left as it is. Returns the acceptance and whether it changed."""
    row = await acceptance(s, acc.id, lic.id)
    if row is not None and (
        acceptance_active(row.status, row.expires_at, now)
        or (row.status == "requested" and lic.requires_approval)
    ):
        return row, False
    if row is None:
        row = LicenceAcceptance(account_id=acc.id, licence_id=lic.id)
        s.add(row)
    row.requested_at, row.expires_at = now, None
    if lic.requires_approval:
        row.status, row.approved_by, row.approved_at = "requested", None, None
    else:
        row.status, row.approved_by, row.approved_at = "approved", acc.name, now
    return row, True


async def approve_licence(
    s: AsyncSession,
    acc: Account,
    lic: Licence,
    *,
    by: str,
    now: datetime,
    expires_at: datetime | None,
) -> LicenceAcceptance:
    row = await acceptance(s, acc.id, lic.id)
    if row is None:
        # An approver may record an agreement signed on paper without a prior request.
        row = LicenceAcceptance(account_id=acc.id, licence_id=lic.id, requested_at=now)
        s.add(row)
    row.status, row.approved_by, row.approved_at, row.expires_at = "approved", by, now, expires_at
    return row


async def acceptances_of(s: AsyncSession, account_id: int) -> list[LicenceAcceptance]:
    return list(
        await s.scalars(
            select(LicenceAcceptance)
            .where(LicenceAcceptance.account_id == account_id)
            .order_by(LicenceAcceptance.licence_id)
        )
    )


async def collection_licences(s: AsyncSession) -> dict[str, str]:
    rows = await s.execute(select(Collection.name, Collection.licence_id))
    return {name: lic for name, lic in rows if lic}


# -- bootstrap -----------------------------------------------------------------------


async def ensure_admin(db: Database, username: str, password: str) -> None:
    """Create the bootstrap admin from settings, or bring it back in line with them
    (password, admin role, enabled) at every start."""
    now = utcnow()
    async with db.session() as s:
        existing = await find_account(s, username)
    if existing is not None:
        ok, _ = await asyncio.to_thread(crypto.verify_secret, existing.secret_hash, password)
        new_hash = None if ok else await asyncio.to_thread(crypto.hash_secret, password)
    else:
        new_hash = await asyncio.to_thread(crypto.hash_secret, password)
    async with db.session() as s, s.begin():
        acc = await find_account(s, username)
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
            await audit(s, "user_created", actor="bootstrap", subject=username, roles=["admin"])
        else:
            if new_hash is not None:
                acc.secret_hash, acc.secret_changed_at = new_hash, now
            acc.disabled = False
        for row in (RoleRow("admin"), RoleRow("user")):
            await add_role(s, acc, row, by="bootstrap", now=now)


# -- throttling ----------------------------------------------------------------------


def throttle_key(kind: str, value: str) -> str:
    """Keys are hashed: a password typed into the username field must not be stored."""
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()[:40]}"


async def locked_until(s: AsyncSession, keys: Sequence[str], now: datetime) -> datetime | None:
    """The latest lockout among ``keys`` that is still running, if any."""
    rows = await s.scalars(
        select(LoginFailure.locked_until).where(
            LoginFailure.key.in_(keys), LoginFailure.locked_until > now
        )
    )
    return max((r for r in rows if r is not None), default=None)


async def record_failure(s: AsyncSession, key: str, policy: ThrottlePolicy, now: datetime) -> None:
    row = await s.get(LoginFailure, key)
    if row is None:
        row = LoginFailure(key=key, failures=0)
        s.add(row)
    row.failures = failures_after_one_more(policy, row.failures, row.last_failure_at, now)
    row.last_failure_at = now
    lock = lockout_seconds(policy, row.failures)
    row.locked_until = now + timedelta(seconds=lock) if lock else None


async def clear_failures(s: AsyncSession, key: str) -> None:
    await s.execute(delete(LoginFailure).where(LoginFailure.key == key))


# -- audit ---------------------------------------------------------------------------


async def audit(
    s: AsyncSession,
    action: str,
    *,
    actor: str = "",
    subject: str = "",
    ip: str = "",
    **detail: Any,
) -> None:
    """Record an audit entry in the caller's transaction (never pass a secret here)."""
    s.add(
        AuditEntry(
            at=utcnow(),
            action=action,
            actor=actor,
            subject=subject,
            ip=ip,
            detail={k: v for k, v in detail.items() if v not in (None, "", [], {})},
        )
    )
    log.info("audit %s actor=%s subject=%s", action, actor or "-", subject or "-")
