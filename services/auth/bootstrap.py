"""Wires the auth service: its typed dependencies (keys, revocation list, token issuer),
tables, migrations, routes and consumers; seeds and the bootstrap admin at start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from services.auth import consumers as on
from services.auth import crypto
from services.auth.domain import normalise_username
from services.auth.models import metadata
from services.auth.service import accounts, licences
from services.auth.service.audit import Caller, Unit
from services.auth.tokens import (
    Issuer,
    KeyRing,
    NotReplicated,
    RevocationList,
    prune_expired,
)
from services.common.db import Database
from services.common.events import CollectionUpdated
from services.common.housekeeping import repeat, stop
from services.common.messaging import Messaging
from services.common.security import StaticKeys, TokenVerifier
from services.common.service import Consumer, ServiceContext, ServiceSpec, TokenPorts
from services.common.settings import Settings

log = logging.getLogger("imarc.auth")


@dataclass
class Auth:
    """What auth's use cases and routes work with."""

    db: Database
    messaging: Messaging
    settings: Settings
    #: the signing keys: the JWKS every service verifies with, the key that signs
    keyring: KeyRing
    #: revoked tokens, sessions and disabled accounts, reloaded every few seconds
    revocations: RevocationList
    issuer: Issuer
    #: verifies the tokens auth issued (refresh tokens, the token a logout ends)
    verifier: TokenVerifier
    #: CloudEvents ``source`` of the events auth emits
    source: str
    #: a replica site reads the primary's replicated database and writes nothing
    replica: bool = False
    housekeeping: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def uow(self, caller: Caller | None = None, *, ip: str = "") -> AsyncIterator[Unit]:
        """A unit of work: state changes, the events emitted and the audit rows recorded
        commit together. Audit rows name the caller (or, with no caller, ``ip`` only)."""
        async with self.messaging.transaction() as uow:
            if caller is None:
                yield Unit(uow, ip=ip)
            else:
                yield Unit(uow, actor=caller.name, ip=caller.ip)


def build(ctx: ServiceContext) -> Auth:
    settings = ctx.settings
    replica = settings.site_role == "replica"
    # A replica's database is the primary's, replicated (read-only): it only loads what
    # the primary wrote — no key creation, no seeding, no admin update, no housekeeping.
    keyring = KeyRing(ctx.db, settings.secret.get_secret_value(), read_only=replica)
    issuer = Issuer(keyring, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    verifier = TokenVerifier(
        StaticKeys(keyring.jwks), issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    return Auth(
        db=ctx.db,
        messaging=ctx.messaging,
        settings=settings,
        keyring=keyring,
        revocations=RevocationList(ctx.db),
        issuer=issuer,
        verifier=verifier,
        source=ctx.source,
        replica=replica,
    )


async def on_start(auth: Auth) -> None:
    if auth.replica:
        await _wait_for_primary(auth)
    else:
        await auth.keyring.load()
    await auth.revocations.reload()
    await asyncio.to_thread(crypto.warm_up)
    if auth.replica:
        log.info("replica site: auth serves the primary's keys and accounts read-only")
        return
    if seeded := await licences.seed(auth):
        log.info("seeded %d standard licences", seeded)
    admin = normalise_username(auth.settings.admin_username)
    password = auth.settings.admin_password.get_secret_value()
    if admin and password:
        await accounts.ensure_admin(auth, admin, password)
    else:
        log.warning(
            "no bootstrap admin: set IMARC_ADMIN_USERNAME and IMARC_ADMIN_PASSWORD to create one"
        )
    auth.housekeeping = asyncio.create_task(_housekeeping(auth.db), name="auth-housekeeping")


async def _wait_for_primary(auth: Auth, first: float = 0.5, most: float = 15.0) -> None:
    """A replica starts once its replicated database holds the primary's signing keys;
    until then it says, now and then, what it waits for."""
    delay = first
    while True:
        try:
            await auth.keyring.load()
            return
        except NotReplicated as e:
            log.warning("%s; waiting %.0f s", e, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, most)


async def _housekeeping(db: Database, every: float = 3600.0) -> None:
    async def prune() -> None:
        if pruned := await prune_expired(db):
            log.info("pruned %d expired tokens, revocations and login counters", pruned)

    await repeat(prune, every, "auth housekeeping", log)


async def on_stop(auth: Auth) -> None:
    await stop(auth.housekeeping)
    auth.housekeeping = None


def consumers(auth: Auth) -> Sequence[Consumer]:
    return (
        Consumer(
            "auth.on_collection_updated",
            (CollectionUpdated.TYPE,),
            handler=on.on_collection_updated,
        ),
    )


def tokens(auth: Auth) -> TokenPorts:
    """The keys and revocation list that services in this process verify tokens with."""
    return TokenPorts(StaticKeys(auth.keyring.jwks), auth.revocations.is_revoked)


def spec() -> ServiceSpec[Auth]:
    # the routes name ``Auth`` (api/deps.py), so they are imported once it exists
    from services.auth.api import (
        approvals,
        audit,
        clients,
        grants,
        keys,
        licences,
        me,
        oauth,
        roles,
        usage,
        users,
    )

    return ServiceSpec(
        name="auth",
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        build=build,
        routers=(
            oauth.router,
            me.router,
            users.router,
            roles.router,
            grants.router,
            licences.router,
            approvals.router,
            clients.router,
            keys.router,
            audit.router,
            usage.router,
        ),
        consumers=consumers,
        on_start=on_start,
        on_stop=on_stop,
        tokens=tokens,
    )
