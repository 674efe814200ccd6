"""Wires the auth service: keys, revocation list, OAuth grants, seeds, bootstrap admin."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.auth import accounts, crypto
from services.auth.api import router
from services.auth.domain import normalise_username
from services.auth.handlers import on_collection_updated
from services.auth.models import metadata
from services.auth.oauth import OAuth
from services.auth.tokens import Issuer, KeyRing, RevocationList, prune_expired, utcnow
from services.common.events import CollectionUpdated
from services.common.security import StaticKeys
from services.common.service import Consumer, ServiceContext, ServiceSpec, TokenPorts

log = logging.getLogger("imarc.auth")


async def on_start(ctx: ServiceContext) -> None:
    settings = ctx.settings
    # A replica's database is the primary's, replicated (read-only): it only loads what
    # the primary wrote — no key creation, no seeding, no admin update, no housekeeping.
    replica = settings.site_role == "replica"
    keyring = KeyRing(ctx.db, settings.secret.get_secret_value(), read_only=replica)
    await keyring.load()
    revocations = RevocationList(ctx.db)
    await revocations.reload()
    if ctx.verifier is None:
        raise RuntimeError("the auth service needs the runtime's token verifier")
    issuer = Issuer(keyring, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    ctx.state.update(
        keyring=keyring,
        jwks=keyring.jwks,
        revocations=revocations,
        is_revoked=revocations.is_revoked,
        oauth=OAuth(ctx.db, issuer, ctx.verifier, revocations),
    )
    await asyncio.to_thread(crypto.warm_up)
    if replica:
        log.info("replica site: auth serves the primary's keys and accounts read-only")
        return
    async with ctx.messaging.transaction() as tx:
        if seeded := await accounts.seed_licences(tx.session, utcnow()):
            # Announced like any licence made through the API, so that intake knows them.
            tx.emit(*(accounts.licence_updated(lic, ctx.source) for lic in seeded))
            log.info("seeded %d standard licences", len(seeded))
    admin = normalise_username(settings.admin_username)
    password = settings.admin_password.get_secret_value()
    if admin and password:
        await accounts.ensure_admin(ctx.db, admin, password)
    else:
        log.warning(
            "no bootstrap admin: set IMARC_ADMIN_USERNAME and IMARC_ADMIN_PASSWORD to create one"
        )
    ctx.state["housekeeping"] = asyncio.create_task(_housekeeping(ctx), name="auth-housekeeping")


async def _housekeeping(ctx: ServiceContext, every: float = 3600.0) -> None:
    while True:
        try:
            if pruned := await prune_expired(ctx.db):
                log.info("pruned %d expired tokens, revocations and login counters", pruned)
        except Exception:  # housekeeping never takes the service down
            log.warning("auth housekeeping failed; retrying later", exc_info=True)
        await asyncio.sleep(every)


async def on_stop(ctx: ServiceContext) -> None:
    task = ctx.state.pop("housekeeping", None)
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def consumers(ctx: ServiceContext) -> list[Consumer]:
    return [
        Consumer(
            queue="auth.on_collection_updated",
            patterns=(CollectionUpdated.TYPE,),
            handler=on_collection_updated,
        )
    ]


def tokens(ctx: ServiceContext) -> TokenPorts:
    """The keys and revocation list that services in this process verify tokens with."""

    async def is_revoked(claims: Mapping[str, Any]) -> bool:
        revocations: RevocationList = ctx.state["revocations"]
        return await revocations.is_revoked(dict(claims))

    return TokenPorts(StaticKeys(lambda: ctx.state["jwks"]()), is_revoked)


def spec() -> ServiceSpec:
    return ServiceSpec(
        name="auth",
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        router=router,
        consumers=consumers,
        on_start=on_start,
        on_stop=on_stop,
        tokens=tokens,
    )
