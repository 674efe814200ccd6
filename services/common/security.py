"""Token verification shared by every service: RS256 JWTs checked against the auth
service's JWKS, turned into a ``Principal`` that routes ask questions of.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

import jwt
from fastapi import Depends, HTTPException, Request
from jwt.algorithms import RSAAlgorithm

log = logging.getLogger("imarc.security")


@dataclass(frozen=True)
class Principal:
    """Who is asking, as the token says. Anonymous when there is no token."""

    subject: str = "anonymous"
    roles: frozenset[str] = frozenset()
    collection_roles: Mapping[str, frozenset[str]] = field(default_factory=dict)
    licences: frozenset[str] = frozenset()
    grants: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    policy_accepted: bool = False
    #: licences approved for some collections only: licence id → those collections
    licence_collections: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return self.subject == "anonymous"

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def has_role(self, role: str, collection: str | None = None) -> bool:
        if self.is_admin or role in self.roles:
            return True
        if collection is not None:
            return role in self.collection_roles.get(collection, frozenset())
        return False

    def can_manage(self, collection: str | None = None) -> bool:
        return self.has_role("manager", collection)

    def can_curate(self, collection: str | None = None) -> bool:
        return self.has_role("curator", collection) or self.can_manage(collection)

    def can_submit(self, collection: str, site: str = "") -> bool:
        if self.can_manage(collection):
            return True
        if not self.has_role("submitter", collection):
            return False
        return not self.sites or not site or site in self.sites

    def can_read(self, collection: str, access: str, licence_id: str = "") -> bool:
        """Public collections are open to all. Limited ones need a registered user who has
        accepted the data usage policy and holds a grant or the collection's licence,
        approved whole or for this collection (TCIA's data usage policy)."""
        if access == "public" or self.is_admin or self.can_curate(collection):
            return True
        if self.anonymous or not self.policy_accepted:
            return False
        if collection in self.grants:
            return True
        return bool(licence_id) and (
            licence_id in self.licences
            or collection in self.licence_collections.get(licence_id, frozenset())
        )

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        coll = claims.get("coll") or {}
        return cls(
            subject=str(claims["sub"]),
            roles=frozenset(claims.get("roles") or ()),
            collection_roles={str(k): frozenset(v) for k, v in coll.items()},
            licences=frozenset(claims.get("lic") or ()),
            licence_collections={
                str(k): frozenset(v) for k, v in (claims.get("licc") or {}).items()
            },
            grants=frozenset(claims.get("grants") or ()),
            sites=frozenset(claims.get("sites") or ()),
            scopes=frozenset(str(claims.get("scope") or "").split()),
            policy_accepted=bool(claims.get("dup", False)),
        )


ANONYMOUS = Principal()


class InvalidToken(Exception):
    """The bearer token cannot be trusted; the message says why in one sentence."""


class KeySource(Protocol):
    async def key(self, kid: str) -> Any: ...


class StaticKeys:
    """Public keys handed over in process (embedded mode: the auth service's own keys)."""

    def __init__(self, provider: Any) -> None:
        self._provider = provider  # callable returning a JWKS dict

    async def key(self, kid: str) -> Any:
        for jwk in self._provider()["keys"]:
            if jwk.get("kid") == kid:
                return RSAAlgorithm.from_jwk(jwk)
        raise InvalidToken("the token was signed with an unknown key; log in again")


class JwksClient:
    """Fetches the auth service's JWKS over HTTP. It refetches (at most every 10 s) when a
    token names a key it has not seen, so rotation needs no restart, and replaces the whole
    key set every ``max_age`` seconds, so a retired key stops verifying."""

    def __init__(
        self, url: str, *, min_refresh: float = 10.0, max_age: float = 300.0, transport: Any = None
    ) -> None:
        self.url = url
        self.min_refresh = min_refresh
        self.max_age = max_age
        self.transport = transport
        self._keys: dict[str, Any] = {}
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=5, transport=self.transport) as client:
            resp = await client.get(self.url)
            resp.raise_for_status()
            self._keys = {k["kid"]: RSAAlgorithm.from_jwk(k) for k in resp.json()["keys"]}
            self._fetched = time.monotonic()

    async def key(self, kid: str) -> Any:
        age = time.monotonic() - self._fetched
        if (kid not in self._keys and age > self.min_refresh) or age > self.max_age:
            async with self._lock:
                age = time.monotonic() - self._fetched
                if (kid not in self._keys and age > self.min_refresh) or age > self.max_age:
                    try:
                        await self._refresh()
                    except Exception as e:
                        if kid not in self._keys or age > 2 * self.max_age:
                            raise InvalidToken(
                                "the token's signing keys could not be fetched; try again shortly"
                            ) from e
        if kid not in self._keys:
            raise InvalidToken("the token was signed with an unknown key; log in again")
        return self._keys[kid]


class RevocationClient:
    """Follows the auth service's revocation list (``/api/auth/revocations``) so that a
    logout, a revoked session or a disabled account is refused by every service within
    ``max_age`` seconds, not only when the access token expires."""

    def __init__(self, url: str, *, max_age: float = 10.0, transport: Any = None) -> None:
        self.url = url
        self.max_age = max_age
        self.transport = transport
        self._jti: frozenset[str] = frozenset()
        self._sid: frozenset[str] = frozenset()
        self._subs: frozenset[str] = frozenset()
        self._fetched = float("-inf")
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=5, transport=self.transport) as client:
            resp = await client.get(self.url)
            resp.raise_for_status()
            body = resp.json()
        self._jti = frozenset(body.get("jti", ()))
        self._sid = frozenset(body.get("sid", ()))
        self._subs = frozenset(body.get("sub_sha256", ()))

    async def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        if time.monotonic() - self._fetched > self.max_age:
            async with self._lock:
                if time.monotonic() - self._fetched > self.max_age:
                    try:
                        await self._refresh()
                    except Exception:  # keep answering from the last list we had
                        log.warning("could not fetch the revocation list", exc_info=True)
                    self._fetched = time.monotonic()
        sub = hashlib.sha256(str(claims.get("sub", "")).encode()).hexdigest()
        return claims.get("jti") in self._jti or claims.get("sid") in self._sid or sub in self._subs


class TokenVerifier:
    def __init__(self, keys: KeySource, *, issuer: str, audience: str, leeway: float = 30) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway

    async def verify(self, token: str, *, typ: str = "access") -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise InvalidToken("the bearer token is malformed; log in again") from e
        if header.get("alg") != "RS256":
            raise InvalidToken("the token's algorithm is not accepted (RS256 only)")
        kid = header.get("kid")
        if not kid:
            raise InvalidToken("the token names no signing key; log in again")
        key = await self.keys.key(str(kid))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as e:
            raise InvalidToken("the token has expired; log in again") from e
        except jwt.ImmatureSignatureError as e:
            raise InvalidToken("the token is not valid yet; check the clock") from e
        except jwt.InvalidAudienceError as e:
            raise InvalidToken("the token was issued for another audience") from e
        except jwt.InvalidIssuerError as e:
            raise InvalidToken("the token was issued by an unknown issuer") from e
        except jwt.PyJWTError as e:
            raise InvalidToken("the token's signature or claims are invalid; log in again") from e
        if claims.get("typ", "access") != typ:
            raise InvalidToken(f"a {claims.get('typ')} token cannot be used as an {typ} token")
        return claims

    async def principal(self, token: str) -> Principal:
        return Principal.from_claims(await self.verify(token))


def bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return None if token in ("", "undefined", "null") else token


async def current_principal(request: Request) -> Principal:
    """The caller; anonymous without a bearer token (as NBIA treats a guest)."""
    token = bearer(request)
    if token is None:
        return ANONYMOUS
    verifier: TokenVerifier = request.app.state.verifier
    revoked = getattr(request.app.state, "is_revoked", None)
    try:
        claims = await verifier.verify(token)
    except InvalidToken as e:
        raise HTTPException(401, str(e), headers={"WWW-Authenticate": "Bearer"}) from e
    if revoked is not None and await revoked(claims):
        raise HTTPException(401, "the token has been revoked; log in again")
    return Principal.from_claims(claims)


async def authenticated(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if principal.anonymous:
        raise HTTPException(
            401,
            "this needs a login: run `imarc login` or send a bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AuthenticatedPrincipal = Annotated[Principal, Depends(authenticated)]


def forbid(what: str) -> HTTPException:
    return HTTPException(403, f"you are not allowed to {what}; ask a manager for access")
