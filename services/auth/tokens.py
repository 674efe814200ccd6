"""Signing keys, token issue and revocation.

``KeyRing`` keeps the live keys in memory: the JWKS that the HTTP endpoint serves and
that an in-process runtime verifies with (auth's ``TokenPorts``), and the private key
that signs. ``RevocationList`` answers "is this access token revoked?" from memory,
reloaded from the database every few seconds so that every auth replica learns of a
logout or a disabled account.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth import crypto
from services.auth.domain import (
    ACCESS_TTL,
    KEY_OVERLAP,
    KNOWN_ADDRESS_DAYS,
    REFRESH_TTL,
    Holder,
    access_claims,
    key_live,
    refresh_claims,
)
from services.auth.models import (
    Account,
    KnownAddress,
    LoginFailure,
    RefreshToken,
    Revocation,
    SigningKey,
)
from services.common.db import Database

log = logging.getLogger("imarc.auth.tokens")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return secrets.token_urlsafe(16)


class NotReplicated(RuntimeError):
    """A replica's database does not (yet) hold what the primary writes."""


class KeyRing:
    """The RS256 signing keys (see module docstring)."""

    def __init__(self, db: Database, secret: str, *, read_only: bool = False) -> None:
        self.db = db
        # A replica site's database is the primary's, replicated: it reads the keys the
        # primary made and never creates or retires one itself.
        self.read_only = read_only
        self._secret = secret
        self._jwks: dict[str, Any] = {"keys": []}
        self._signer: tuple[str, RSAPrivateKey] | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    def _wrap(self) -> bytes:
        return crypto.wrapping_key(self._secret)

    def jwks(self) -> dict[str, Any]:
        """The public keys that verify tokens (RFC 7517 JWK Set)."""
        return self._jwks

    def signer(self) -> tuple[str, RSAPrivateKey]:
        if self._signer is None:
            raise RuntimeError("the auth service has no signing key loaded")
        return self._signer

    def sign(self, claims: Mapping[str, Any]) -> str:
        kid, key = self.signer()
        return jwt.encode(dict(claims), key, algorithm="RS256", headers={"kid": kid})

    async def load(self) -> None:
        """Load the live keys; create the first one; retire keys whose tokens expired.
        Read-only, it only leaves expired keys out of the JWKS."""
        async with self._lock:
            now = utcnow()
            if self.read_only:
                live = await self._read_live(now)
            else:
                async with self.db.session() as s, s.begin():
                    rows = list(await s.scalars(self._unretired()))
                    for row in rows:
                        if not key_live(row.state, row.retire_at, now):
                            row.state = "retired"
                    live = [r for r in rows if r.state != "retired"]
                    if not any(r.state == "active" for r in live):
                        live.append(await self._insert_new(s, now))
            active = [r for r in live if r.state == "active"][-1]
            try:
                pem = crypto.unseal(self._wrap(), active.kid, active.private_key)
            except InvalidTag:
                raise RuntimeError(
                    "the signing keys in the auth database were sealed with another "
                    "IMARC_SECRET; start with the secret they were created with"
                ) from None
            self._signer = (active.kid, crypto.load_private(pem))
            self._jwks = {"keys": [r.public_jwk for r in live]}
            self._loaded_at = time.monotonic()

    @staticmethod
    def _unretired() -> Select[SigningKey]:
        return (
            select(SigningKey).where(SigningKey.state != "retired").order_by(SigningKey.created_at)
        )

    async def _read_live(self, now: datetime) -> list[SigningKey]:
        try:
            async with self.db.session() as s:
                rows = list(await s.scalars(self._unretired()))
        except DBAPIError as e:  # no table (yet): nothing of the primary has arrived
            raise NotReplicated(
                "the auth database has no signing keys table: a replica site reads the "
                "primary's database through streaming replication, so IMARC_DATABASE_URL "
                "must name the standby of a primary that has been migrated and started "
                f"({type(e.orig).__name__ if e.orig else type(e).__name__})"
            ) from None
        live = [r for r in rows if key_live(r.state, r.retire_at, now)]
        if not any(r.state == "active" for r in live):
            raise NotReplicated(
                "the auth database has no active signing key; a replica site only reads "
                "the keys of the primary: start the primary site first"
            )
        return live

    async def _insert_new(
        self, s: AsyncSession, now: datetime, new: crypto.NewKey | None = None
    ) -> SigningKey:
        if new is None:
            new = await asyncio.to_thread(crypto.generate_key)
        row = SigningKey(
            kid=new.kid,
            private_key=crypto.seal(self._wrap(), new.kid, new.private_pem),
            public_jwk=new.public_jwk,
            state="active",
            created_at=now,
            retire_at=None,
        )
        s.add(row)
        return row

    async def refresh(self, max_age: float = 30.0) -> None:
        """Reload when stale: another replica may have rotated."""
        if time.monotonic() - self._loaded_at > max_age:
            await self.load()

    async def rotate(self) -> tuple[str, str | None]:
        """A new key signs from now on; the one it replaces stays published until its
        tokens have expired, and so does every key before it (each keeps its own
        ``retire_at``), however many rotations come in between. Returns (new kid, previous)."""
        generated = await asyncio.to_thread(crypto.generate_key)
        now = utcnow()
        async with self.db.session() as s, s.begin():
            rows = list(await s.scalars(select(SigningKey).where(SigningKey.state == "active")))
            previous: str | None = None
            for row in rows:
                row.state, row.retire_at = "previous", now + KEY_OVERLAP
                previous = row.kid
            new = await self._insert_new(s, now, generated)
        await self.load()
        return new.kid, previous

    async def keys(self) -> list[SigningKey]:
        async with self.db.session() as s:
            return list(await s.scalars(select(SigningKey).order_by(SigningKey.created_at)))


class RevocationList:
    """Revoked access tokens (by jti), sessions (by sid) and disabled accounts (by sub)."""

    def __init__(self, db: Database, max_age: float = 5.0) -> None:
        self.db = db
        self.max_age = max_age
        self._jti: set[str] = set()
        self._sid: set[str] = set()
        self._disabled: set[str] = set()
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def reload(self) -> None:
        now = utcnow()
        async with self.db.session() as s:
            revs = (
                await s.execute(
                    select(Revocation.kind, Revocation.value).where(Revocation.expires_at > now)
                )
            ).all()
            disabled = set(await s.scalars(select(Account.name).where(Account.disabled)))
        self._jti = {v for k, v in revs if k == "jti"}
        self._sid = {v for k, v in revs if k == "sid"}
        self._disabled = disabled
        self._loaded_at = time.monotonic()

    async def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        if time.monotonic() - self._loaded_at > self.max_age:
            async with self._lock:
                if time.monotonic() - self._loaded_at > self.max_age:
                    try:
                        await self.reload()
                    except Exception:  # keep answering from the last good list
                        log.warning("could not reload the revocation list", exc_info=True)
        return (
            claims.get("jti") in self._jti
            or claims.get("sid") in self._sid
            or claims.get("sub") in self._disabled
        )

    async def listing(self) -> dict[str, list[str]]:
        """What other services need to refuse revoked tokens: jti and sid values, and the
        SHA-256 of disabled account names (names themselves are not published)."""
        await self.is_revoked({})  # reloads when stale
        return {
            "jti": sorted(self._jti),
            "sid": sorted(self._sid),
            "sub_sha256": sorted(hashlib.sha256(n.encode()).hexdigest() for n in self._disabled),
        }

    def note(self, kind: str, value: str) -> None:
        """Apply a revocation committed by this replica at once."""
        {"jti": self._jti, "sid": self._sid, "sub": self._disabled}[kind].add(value)

    def forget_disabled(self, name: str) -> None:
        self._disabled.discard(name)


@dataclass(frozen=True)
class Issued:
    access_token: str
    expires_in: int
    scope: str
    access_claims: dict[str, Any]
    refresh_token: str | None = None
    refresh_expires_in: int | None = None

    def reply(self) -> dict[str, Any]:
        """The OAuth2 token response (RFC 6749 §5.1), in the NBIA-compatible shape."""
        out: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
        }
        if self.refresh_token is not None:
            out["refresh_token"] = self.refresh_token
            out["refresh_expires_in"] = self.refresh_expires_in
        out["scope"] = self.scope
        return out


class Issuer:
    """Signs access and refresh tokens and records refresh tokens."""

    def __init__(self, keyring: KeyRing, *, issuer: str, audience: str) -> None:
        self.keyring = keyring
        self.issuer = issuer
        self.audience = audience

    async def ready(self) -> None:
        """Pick up a rotation made by another replica; call before opening a session
        (SQLite has one connection per file: a nested session would wait forever)."""
        await self.keyring.refresh()

    async def issue(
        self,
        s: AsyncSession,
        holder: Holder,
        *,
        scopes: frozenset[str],
        client_id: str = "",
        family: str | None = None,
        with_refresh: bool = True,
    ) -> tuple[Issued, str | None]:
        """Returns the tokens and the jti of the new refresh token (if any). Runs in the
        caller's transaction, so it does no I/O of its own (see ``ready``)."""
        now = int(time.time())
        sid = family or new_id()
        claims = access_claims(
            holder,
            scopes=scopes,
            issuer=self.issuer,
            audience=self.audience,
            now=now,
            jti=new_id(),
            sid=sid,
            client_id=client_id,
        )
        access = self.keyring.sign(claims)
        if not with_refresh:
            return Issued(access, ACCESS_TTL, claims["scope"], claims), None
        jti = new_id()
        rclaims = refresh_claims(
            holder.name,
            scopes=scopes,
            issuer=self.issuer,
            audience=self.audience,
            now=now,
            jti=jti,
            sid=sid,
            client_id=client_id,
        )
        issued_at = datetime.fromtimestamp(now, UTC)
        s.add(
            RefreshToken(
                jti=jti,
                family=sid,
                subject=holder.name,
                client_id=client_id,
                issued_at=issued_at,
                expires_at=issued_at + timedelta(seconds=REFRESH_TTL),
            )
        )
        refresh = self.keyring.sign(rclaims)
        return Issued(access, ACCESS_TTL, claims["scope"], claims, refresh, REFRESH_TTL), jti


async def revoke_family(s: AsyncSession, family: str, now: datetime) -> None:
    """End a login session: its refresh tokens and (through ``sid``) its access tokens."""
    await s.execute(
        update(RefreshToken)
        .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await add_revocation(s, "sid", family, now + timedelta(seconds=REFRESH_TTL + ACCESS_TTL))


async def add_revocation(s: AsyncSession, kind: str, value: str, expires_at: datetime) -> None:
    exists = await s.scalar(
        select(Revocation.id).where(Revocation.kind == kind, Revocation.value == value)
    )
    if exists is None:
        s.add(Revocation(kind=kind, value=value, expires_at=expires_at))


async def revoke_subject_sessions(s: AsyncSession, subject: str, now: datetime) -> list[str]:
    """End every live session of an account (disabled, password reset)."""
    families = list(
        await s.scalars(
            select(RefreshToken.family)
            .where(
                RefreshToken.subject == subject,
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
            )
            .distinct()
        )
    )
    for family in families:
        await revoke_family(s, family, now)
    return families


async def prune_expired(db: Database, *, keep_failures: float = 3600.0) -> int:
    """Delete what can no longer matter: refresh tokens and revocations past their
    expiry, failed-login counters nobody has touched for ``keep_failures`` seconds, and
    addresses an account has not logged in from for ``KNOWN_ADDRESS_DAYS``."""
    now = utcnow()
    async with db.session() as s, s.begin():
        n = 0
        for stmt in (
            delete(RefreshToken).where(RefreshToken.expires_at < now),
            delete(Revocation).where(Revocation.expires_at < now),
            delete(LoginFailure).where(
                LoginFailure.last_failure_at < now - timedelta(seconds=keep_failures),
                or_(LoginFailure.locked_until.is_(None), LoginFailure.locked_until < now),
            ),
            delete(KnownAddress).where(
                KnownAddress.last_login_at < now - timedelta(days=KNOWN_ADDRESS_DAYS)
            ),
        ):
            n += (await s.execute(stmt)).rowcount  # type: ignore[attr-defined]
    return n
