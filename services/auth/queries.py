"""Reads for auth's API: accounts with their roles, grants and licences (a constant number
of queries however many accounts), licences, requests waiting for approval, signing keys
and the audit log."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth import domain
from services.auth.domain import NotFound
from services.auth.models import (
    Account,
    AuditEntry,
    Collection,
    CollectionGrant,
    Licence,
    LicenceAcceptance,
    RoleAssignment,
    SigningKey,
)
from services.auth.schemas import (
    AcceptanceOut,
    AuditOut,
    GrantOut,
    KeyOut,
    LicenceOut,
    RoleOut,
    UserOut,
)
from services.auth.tokens import utcnow
from services.common.db import Database, dialect_of, month_of

# -- accounts --------------------------------------------------------------------------


async def find_account(s: AsyncSession, name: str, kind: str | None = None) -> Account | None:
    q = select(Account).where(Account.name == name)
    if kind is not None:
        q = q.where(Account.kind == kind)
    return (await s.scalars(q)).one_or_none()


async def get_account(s: AsyncSession, name: str) -> Account:
    acc = await find_account(s, name)
    if acc is None:
        raise NotFound(f"there is no account {name!r}; check the name")
    return acc


async def own_account(s: AsyncSession, name: str) -> Account:
    acc = await find_account(s, name)
    if acc is None:
        raise NotFound("your account no longer exists; register or log in again")
    return acc


async def role_rows(s: AsyncSession, account_id: int) -> list[domain.RoleRow]:
    rows = await s.execute(
        select(RoleAssignment.role, RoleAssignment.collection, RoleAssignment.site).where(
            RoleAssignment.account_id == account_id
        )
    )
    return sorted(domain.RoleRow(r, c, site) for r, c, site in rows)


def acceptance_out(row: LicenceAcceptance, username: str, now: datetime) -> AcceptanceOut:
    return AcceptanceOut(
        username=username,
        licence_id=row.licence_id,
        status=row.status,  # type: ignore[arg-type]
        active=domain.acceptance_active(row.status, row.expires_at, now),
        requested_at=row.requested_at,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
        expires_at=row.expires_at,
        collections=row.collections,
    )


def grant_out(row: CollectionGrant, now: datetime) -> GrantOut:
    return GrantOut(
        collection=row.collection,
        granted_by=row.granted_by,
        granted_at=row.granted_at,
        expires_at=row.expires_at,
        active=domain.grant_active(row.expires_at, now),
    )


async def user_views(s: AsyncSession, accounts: Sequence[Account]) -> list[UserOut]:
    """The accounts as the API shows them, with roles, grants and licences: three
    queries for all of them together, whatever their number."""
    ids = [a.id for a in accounts]
    roles: dict[int, list[domain.RoleRow]] = defaultdict(list)
    grants: dict[int, list[CollectionGrant]] = defaultdict(list)
    accepted: dict[int, list[LicenceAcceptance]] = defaultdict(list)
    if ids:
        rows = await s.execute(
            select(
                RoleAssignment.account_id,
                RoleAssignment.role,
                RoleAssignment.collection,
                RoleAssignment.site,
            ).where(RoleAssignment.account_id.in_(ids))
        )
        for account_id, role, collection, site in rows:
            roles[account_id].append(domain.RoleRow(role, collection, site))
        for g in await s.scalars(
            select(CollectionGrant)
            .where(CollectionGrant.account_id.in_(ids))
            .order_by(CollectionGrant.collection)
        ):
            grants[g.account_id].append(g)
        for a in await s.scalars(
            select(LicenceAcceptance)
            .where(LicenceAcceptance.account_id.in_(ids))
            .order_by(LicenceAcceptance.licence_id)
        ):
            accepted[a.account_id].append(a)
    now = utcnow()
    return [
        UserOut(
            username=acc.name,
            kind=acc.kind,  # type: ignore[arg-type]
            email=acc.email,
            name=acc.display_name,
            disabled=acc.disabled,
            created_at=acc.created_at,
            created_by=acc.created_by,
            policy_accepted_at=acc.policy_accepted_at,
            roles=[
                RoleOut(role=r.role, collection=r.collection or None, site=r.site or None)
                for r in sorted(roles[acc.id])
            ],
            grants=[grant_out(g, now) for g in grants[acc.id]],
            licences=[acceptance_out(a, acc.name, now) for a in accepted[acc.id]],
        )
        for acc in accounts
    ]


async def user_view(s: AsyncSession, acc: Account) -> UserOut:
    return (await user_views(s, [acc]))[0]


async def accounts(
    db: Database, *, kind: Literal["user", "client"], q: str = "", limit: int | None = None
) -> list[UserOut]:
    """Accounts of one kind by name, those whose name contains ``q``."""
    stmt = select(Account).where(Account.kind == kind).order_by(Account.name)
    if q:
        stmt = stmt.where(Account.name.contains(q.lower()))
    if limit is not None:
        stmt = stmt.limit(limit)
    async with db.session() as s:
        return await user_views(s, list(await s.scalars(stmt)))


async def account(db: Database, name: str, *, own: bool = False) -> UserOut:
    async with db.session() as s:
        acc = await (own_account(s, name) if own else get_account(s, name))
        return await user_view(s, acc)


async def policy_accepted_at(db: Database, name: str) -> datetime | None:
    async with db.session() as s:
        acc = await find_account(s, name)
        return acc.policy_accepted_at if acc else None


async def own_licences(db: Database, name: str) -> list[AcceptanceOut]:
    async with db.session() as s:
        acc = await own_account(s, name)
        rows = await s.scalars(
            select(LicenceAcceptance)
            .where(LicenceAcceptance.account_id == acc.id)
            .order_by(LicenceAcceptance.licence_id)
        )
        now = utcnow()
        return [acceptance_out(a, acc.name, now) for a in rows]


# -- licences --------------------------------------------------------------------------


def licence_out(lic: Licence) -> LicenceOut:
    return LicenceOut.model_validate(lic, from_attributes=True)


async def get_licence(s: AsyncSession, licence_id: str) -> Licence:
    lic = await s.get(Licence, licence_id)
    if lic is None:
        raise NotFound(f"there is no licence {licence_id!r}; GET /api/auth/licences lists them")
    return lic


async def licences(db: Database) -> list[LicenceOut]:
    async with db.session() as s:
        return [licence_out(x) for x in await s.scalars(select(Licence).order_by(Licence.id))]


async def licence(db: Database, licence_id: str) -> LicenceOut:
    async with db.session() as s:
        return licence_out(await get_licence(s, licence_id))


async def collection_licences(s: AsyncSession) -> dict[str, str]:
    """collection → licence id, as auth learnt them from collection.updated."""
    rows = await s.execute(select(Collection.name, Collection.licence_id))
    return {name: lic for name, lic in rows if lic}


async def licence_requests(
    db: Database, status: str, licences: set[str] | None
) -> list[AcceptanceOut]:
    """Acceptances in ``status``, oldest request first; of ``licences`` only, if given."""
    stmt = (
        select(LicenceAcceptance, Account.name)
        .join(Account, Account.id == LicenceAcceptance.account_id)
        .where(LicenceAcceptance.status == status)
        .order_by(LicenceAcceptance.requested_at)
    )
    if licences is not None:
        stmt = stmt.where(LicenceAcceptance.licence_id.in_(licences))
    now = utcnow()
    async with db.session() as s:
        return [acceptance_out(a, name, now) for a, name in (await s.execute(stmt)).all()]


# -- keys and audit --------------------------------------------------------------------


def key_out(k: SigningKey) -> KeyOut:
    return KeyOut.model_validate(k, from_attributes=True)


async def audit_log(
    db: Database, *, action: str, subject: str, actor: str, before: int | None, limit: int
) -> list[AuditOut]:
    """Newest first; page with ``before`` = the smallest id seen."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if subject:
        stmt = stmt.where(AuditEntry.subject == subject)
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if before is not None:
        stmt = stmt.where(AuditEntry.id < before)
    async with db.session() as s:
        return [AuditOut.model_validate(e, from_attributes=True) for e in await s.scalars(stmt)]


async def accounts_by_month(
    db: Database, start: datetime, end: datetime
) -> list[tuple[str, int, int]]:
    """User accounts registered in ``[start, end)`` by calendar month (UTC): (month,
    registered that month, registered up to the end of that month)."""
    async with db.session() as s:
        month = month_of(Account.created_at, dialect_of(s))
        users = Account.kind == "user"
        before = await s.scalar(select(func.count()).where(users, Account.created_at < start))
        rows = (
            await s.execute(
                select(month, func.count())
                .where(users, Account.created_at >= start, Account.created_at < end)
                .group_by(month)
                .order_by(month)
            )
        ).all()
    total, out = int(before or 0), []
    for m, n in rows:
        total += int(n)
        out.append((str(m), int(n), total))
    return out
