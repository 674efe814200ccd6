"""Machine clients (a mirror, a submitter's tool): API keys with their own roles, grants
and licences, made and revoked by an admin."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from services.auth import crypto, domain, queries
from services.auth.domain import Invalid, NotFound
from services.auth.schemas import ClientCreated
from services.auth.service.access import set_grant
from services.auth.service.accounts import create_account
from services.auth.service.audit import Caller, require_admin
from services.auth.service.licences import approve_for
from services.auth.tokens import utcnow

if TYPE_CHECKING:
    from services.auth.bootstrap import Auth


async def create(
    auth: Auth,
    caller: Caller,
    *,
    name: str,
    roles: Sequence[tuple[str, str | None, str | None]],
    grants: Sequence[str],
    licences: Sequence[str],
) -> ClientCreated:
    """An API key: the secret is returned once and stored hashed."""
    await require_admin(auth, caller, "create API clients")
    rows = [domain.role_row(*r) for r in roles]
    for c in grants:
        if problem := domain.collection_problem(c):
            raise Invalid(problem)
    client_id = crypto.new_client_id(domain.CLIENT_PREFIX)
    secret = crypto.new_client_secret()
    secret_hash = await asyncio.to_thread(crypto.hash_secret, secret)
    now = utcnow()
    async with auth.uow(caller) as unit:
        s = unit.session
        # Machine clients act under the policy their admin agreed to on their behalf.
        acc = await create_account(
            s,
            name=client_id,
            kind="client",
            secret_hash=secret_hash,
            created_by=caller.name,
            now=now,
            roles=rows,
            display_name=name,
            policy_accepted=True,
        )
        for c in grants:
            await set_grant(s, acc, c, by=caller.name, now=now, expires_at=None)
        for lid in licences:
            lic = await queries.get_licence(s, lid)
            await approve_for(s, acc, lic, by=caller.name, now=now, expires_at=None)
        unit.audit(
            "client_created",
            subject=client_id,
            roles=[x.role for x in rows],
            grants=list(grants),
            licences=list(licences),
        )
    return ClientCreated(client_id=client_id, client_secret=secret, name=name)


async def revoke(auth: Auth, caller: Caller, client_id: str) -> None:
    """The client is disabled and its tokens stop working."""
    await require_admin(auth, caller, "revoke API clients")
    async with auth.uow(caller) as unit:
        acc = await queries.find_account(unit.session, client_id, "client")
        if acc is None:
            raise NotFound(f"there is no client {client_id!r}")
        acc.disabled = True
        unit.audit("client_revoked", subject=client_id)
    auth.revocations.note("sub", client_id)
