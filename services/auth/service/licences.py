"""Licences and their acceptances: the standard licences seeded at first start, an
admin's changes (each announced in ``licence.updated``), a user accepting one, and an
approver approving or revoking it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from services.auth import domain, queries
from services.auth.domain import SEED_LICENCES, Conflict, Invalid, NotFound
from services.auth.models import Account, Collection, Licence, LicenceAcceptance
from services.auth.schemas import AcceptanceOut, LicenceOut
from services.auth.service.audit import Caller, denied, require_admin
from services.auth.tokens import utcnow
from services.common.events import Event, LicenceUpdated

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from services.auth.bootstrap import Auth


def licence_updated(lic: Licence, source: str, *, deleted: bool = False) -> Event:
    """The ``licence.updated`` event that tells other services (intake) of a licence's
    current id, name and URL, or that it was deleted. Emit it in the unit of work that
    changed the row."""
    return LicenceUpdated(
        id=lic.id,
        name=lic.name,
        url=lic.url,
        commercial_use=lic.commercial_use,
        requires_approval=lic.requires_approval,
        deleted=deleted,
    ).event(source, subject=lic.id)


async def seed(auth: Auth) -> int:
    """The standard licences, at first start (when the table is empty), announced like
    any licence made through the API so that intake knows them. Returns how many."""
    async with auth.uow() as unit:
        if await unit.session.scalar(select(func.count()).select_from(Licence)):
            return 0
        now = utcnow()
        seeded = [
            Licence(
                id=x.id,
                name=x.name,
                url=x.url,
                text=x.text,
                commercial_use=x.commercial_use,
                requires_approval=x.requires_approval,
                created_at=now,
                updated_at=now,
            )
            for x in SEED_LICENCES
        ]
        unit.session.add_all(seeded)
        unit.emit(*(licence_updated(lic, auth.source) for lic in seeded))
        return len(seeded)


# -- an admin's changes ----------------------------------------------------------------


async def create(auth: Auth, caller: Caller, fields: dict[str, Any]) -> LicenceOut:
    await require_admin(auth, caller, "create licences")
    licence_id = fields["id"]
    if problem := domain.licence_id_problem(licence_id):
        raise Invalid(problem)
    now = utcnow()
    async with auth.uow(caller) as unit:
        if await unit.session.get(Licence, licence_id) is not None:
            raise Conflict(f"licence {licence_id!r} exists; change it with PATCH")
        lic = Licence(**fields, created_at=now, updated_at=now)
        unit.session.add(lic)
        unit.audit("licence_created", subject=licence_id)
        unit.emit(licence_updated(lic, auth.source))
        return queries.licence_out(lic)


async def update(
    auth: Auth, caller: Caller, licence_id: str, changes: dict[str, Any]
) -> LicenceOut:
    await require_admin(auth, caller, "change licences")
    async with auth.uow(caller) as unit:
        lic = await queries.get_licence(unit.session, licence_id)
        for k, v in changes.items():
            setattr(lic, k, v)
        lic.updated_at = utcnow()
        unit.audit("licence_changed", subject=lic.id, fields=sorted(changes))
        unit.emit(licence_updated(lic, auth.source))
        return queries.licence_out(lic)


async def delete(auth: Auth, caller: Caller, licence_id: str) -> None:
    await require_admin(auth, caller, "delete licences")
    async with auth.uow(caller) as unit:
        s = unit.session
        lic = await queries.get_licence(s, licence_id)
        used = await s.scalar(
            select(func.count())
            .select_from(LicenceAcceptance)
            .where(LicenceAcceptance.licence_id == lic.id)
        ) or await s.scalar(
            select(func.count()).select_from(Collection).where(Collection.licence_id == lic.id)
        )
        if used:
            raise Conflict(
                f"licence {lic.id!r} is in use by collections or acceptances; "
                "change its text instead"
            )
        await s.delete(lic)
        unit.audit("licence_deleted", subject=lic.id)
        unit.emit(licence_updated(lic, auth.source, deleted=True))


# -- acceptances -----------------------------------------------------------------------


async def acceptance(s: AsyncSession, account_id: int, licence_id: str) -> LicenceAcceptance | None:
    return (
        await s.scalars(
            select(LicenceAcceptance).where(
                LicenceAcceptance.account_id == account_id,
                LicenceAcceptance.licence_id == licence_id,
            )
        )
    ).one_or_none()


async def accept(auth: Auth, caller: Caller, licence_id: str) -> AcceptanceOut:
    """The caller accepts a licence: open licences are approved at once (self-approved);
    restricted ones are recorded as a request for an admin or a collection's manager. An
    approved, unexpired acceptance is left as it is."""
    async with auth.uow(caller) as unit:
        s = unit.session
        acc = await queries.own_account(s, caller.name)
        lic = await queries.get_licence(s, licence_id)
        now = utcnow()
        row = await acceptance(s, acc.id, lic.id)
        if row is None or not (
            domain.acceptance_active(row.status, row.expires_at, now)
            or (row.status == "requested" and lic.requires_approval)
        ):
            if row is None:
                row = LicenceAcceptance(account_id=acc.id, licence_id=lic.id)
                s.add(row)
            row.requested_at, row.expires_at, row.collections = now, None, None
            if lic.requires_approval:
                row.status, row.approved_by, row.approved_at = "requested", None, None
            else:
                row.status, row.approved_by, row.approved_at = "approved", acc.name, now
            approved = row.status == "approved"
            unit.audit(
                "licence_approved" if approved else "licence_requested",
                subject=acc.name,
                licence=lic.id,
                self_approved=approved,
            )
        return queries.acceptance_out(row, acc.name, utcnow())


async def approve_for(
    s: AsyncSession,
    acc: Account,
    lic: Licence,
    *,
    by: str,
    now: datetime,
    expires_at: datetime | None,
    scope: frozenset[str] | None = None,
) -> LicenceAcceptance:
    """Approve ``lic`` for ``acc``: for the collections in ``scope`` (added to those an
    active approval covers), or with None the whole licence."""
    row = await acceptance(s, acc.id, lic.id)
    if row is None:
        # An approver may record an agreement signed on paper without a prior request.
        row = LicenceAcceptance(account_id=acc.id, licence_id=lic.id, requested_at=now)
        s.add(row)
    active = domain.acceptance_active(row.status, row.expires_at, now)
    row.collections = domain.widened_scope(row.collections, active, scope)
    row.status, row.approved_by, row.approved_at, row.expires_at = "approved", by, now, expires_at
    return row


async def _collection_licences(auth: Auth) -> dict[str, str]:
    async with auth.db.session() as s:
        return await queries.collection_licences(s)


async def requests(auth: Auth, caller: Caller, status: str) -> list[AcceptanceOut]:
    """Acceptances waiting for approval: all of them for an admin, those of the licences
    of their collections for a manager."""
    mine: set[str] | None = None
    if not caller.principal.is_admin:
        mine = domain.managed_licences(caller.principal, await _collection_licences(auth))
        if not mine:
            raise await denied(auth, caller, "see licence requests")
    return await queries.licence_requests(auth.db, status, mine)


async def approve(
    auth: Auth,
    caller: Caller,
    username: str,
    licence_id: str,
    expires_at: datetime | None,
    collections: Sequence[str] = (),
) -> AcceptanceOut:
    """Approve a licence for an account, optionally until ``expires_at``: an admin for the
    whole licence (or the ``collections`` named), a manager for the collections under it
    they manage (or those of them named) — never for a collection someone else manages."""
    try:
        scope = domain.approval_scope(
            caller.principal, licence_id, await _collection_licences(auth), collections
        )
    except domain.NotPermitted as e:
        raise await denied(auth, caller, e.what) from None
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise Invalid("expires_at is in the past; give a future date")
    async with auth.uow(caller) as unit:
        acc = await queries.get_account(unit.session, domain.normalise_username(username))
        lic = await queries.get_licence(unit.session, licence_id)
        row = await acceptance(unit.session, acc.id, lic.id)
        if (
            scope is not None
            and row is not None
            and row.collections is None
            and domain.acceptance_active(row.status, row.expires_at, now)
        ):
            # approved whole already (by an admin): a manager neither narrows nor extends it
            return queries.acceptance_out(row, acc.name, now)
        row = await approve_for(
            unit.session, acc, lic, by=caller.name, now=now, expires_at=expires_at, scope=scope
        )
        unit.audit(
            "licence_approved",
            subject=acc.name,
            licence=lic.id,
            collections=row.collections,
            expires_at=expires_at.isoformat() if expires_at else None,
        )
        return queries.acceptance_out(row, acc.name, now)


async def revoke(auth: Auth, caller: Caller, username: str, licence_id: str) -> None:
    """Revoke an account's licence: an admin revokes it whole; a manager takes away the
    collections they manage from it (all of it when nothing else is left)."""
    collection_licences = await _collection_licences(auth)
    try:
        scope = domain.approval_scope(caller.principal, licence_id, collection_licences)
    except domain.NotPermitted:
        raise await denied(auth, caller, f"revoke the {licence_id} licence") from None
    async with auth.uow(caller) as unit:
        acc = await queries.get_account(unit.session, domain.normalise_username(username))
        row = await acceptance(unit.session, acc.id, licence_id)
        held = row is not None and row.status != "revoked"
        left: list[str] = []
        # a request not yet approved is declined whole; an approval loses the revoker's part
        if row is not None and held and row.status == "approved" and scope is not None:
            under = domain.collections_under(licence_id, collection_licences)
            left = domain.narrowed_scope(row.collections, under, scope)
            held = left != (sorted(under) if row.collections is None else row.collections)
        if row is None or not held:
            raise NotFound(f"{acc.name!r} holds no {licence_id} licence you can revoke")
        if left:
            row.collections = left
        else:
            row.status = "revoked"
        unit.audit("licence_revoked", subject=acc.name, licence=licence_id, collections_left=left)
