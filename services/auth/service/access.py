"""Roles and collection grants: who may give them, and giving or taking them away."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth import domain, queries
from services.auth.domain import Conflict, Invalid, NotFound, RoleRow
from services.auth.models import Account, CollectionGrant, RoleAssignment
from services.auth.schemas import GrantOut, UserOut
from services.auth.service.audit import Caller, denied
from services.auth.tokens import utcnow

if TYPE_CHECKING:
    from services.auth.bootstrap import Auth


def _assignment(acc: Account, row: RoleRow) -> ColumnElement[bool]:
    return and_(
        RoleAssignment.account_id == acc.id,
        RoleAssignment.role == row.role,
        RoleAssignment.collection == row.collection,
        RoleAssignment.site == row.site,
    )


async def add_role(s: AsyncSession, acc: Account, row: RoleRow, *, by: str, now: datetime) -> bool:
    exists = await s.scalar(select(RoleAssignment.id).where(_assignment(acc, row)))
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


async def _admins(s: AsyncSession) -> list[int]:
    """The enabled accounts holding the admin role, locked until the transaction ends so that
    two admins stepping down at once cannot both pass the last-admin check."""
    rows = await s.scalars(
        select(RoleAssignment.account_id)
        .join(Account, Account.id == RoleAssignment.account_id)
        .where(RoleAssignment.role == "admin", Account.disabled.is_(False))
        .with_for_update(of=RoleAssignment)
    )
    return sorted(set(rows))


# -- use cases -------------------------------------------------------------------------


async def grant_role(
    auth: Auth, caller: Caller, username: str, row: RoleRow
) -> tuple[UserOut, bool]:
    """Give a role; returns the account and whether the role is new to it."""
    if not domain.may_grant_role(caller.principal, row.role, row.collection):
        raise await denied(auth, caller, f"give the {row.role} role here")
    async with auth.uow(caller) as unit:
        acc = await queries.get_account(unit.session, domain.normalise_username(username))
        added = await add_role(unit.session, acc, row, by=caller.name, now=utcnow())
        if added:
            unit.audit(
                "role_granted",
                subject=acc.name,
                role=row.role,
                collection=row.collection,
                site=row.site,
            )
        return await queries.user_view(unit.session, acc), added


async def revoke_role(auth: Auth, caller: Caller, username: str, row: RoleRow) -> None:
    if not domain.may_grant_role(caller.principal, row.role, row.collection):
        raise await denied(auth, caller, f"take the {row.role} role away here")
    async with auth.uow(caller) as unit:
        s = unit.session
        acc = await queries.get_account(s, domain.normalise_username(username))
        if row.role == "admin" and await _admins(s) == [acc.id]:
            raise Conflict(
                f"{acc.name!r} is the last admin: nobody could manage accounts without one; "
                "make another account admin first, then take this role away"
            )
        removed = await s.execute(delete(RoleAssignment).where(_assignment(acc, row)))
        if not removed.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"{acc.name!r} does not have that role; nothing to do")
        unit.audit(
            "role_revoked",
            subject=acc.name,
            role=row.role,
            collection=row.collection,
            site=row.site,
        )


async def add_grant(
    auth: Auth, caller: Caller, username: str, collection: str, expires_at: datetime | None
) -> GrantOut:
    """Access to a limited collection (admin, or the collection's manager)."""
    if problem := domain.collection_problem(collection):
        raise Invalid(problem)
    if not domain.may_grant_collection(caller.principal, collection):
        raise await denied(auth, caller, f"grant access to {collection}")
    async with auth.uow(caller) as unit:
        acc = await queries.get_account(unit.session, domain.normalise_username(username))
        now = utcnow()
        grant = await set_grant(
            unit.session, acc, collection, by=caller.name, now=now, expires_at=expires_at
        )
        unit.audit(
            "grant_added",
            subject=acc.name,
            collection=collection,
            expires_at=expires_at.isoformat() if expires_at else None,
        )
        return queries.grant_out(grant, now)


async def remove_grant(auth: Auth, caller: Caller, username: str, collection: str) -> None:
    if not domain.may_grant_collection(caller.principal, collection):
        raise await denied(auth, caller, f"remove access to {collection}")
    async with auth.uow(caller) as unit:
        s = unit.session
        acc = await queries.get_account(s, domain.normalise_username(username))
        removed = await s.execute(
            delete(CollectionGrant).where(
                CollectionGrant.account_id == acc.id, CollectionGrant.collection == collection
            )
        )
        if not removed.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"{acc.name!r} has no grant on {collection}")
        unit.audit("grant_removed", subject=acc.name, collection=collection)
