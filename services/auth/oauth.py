"""OAuth2 grants (RFC 6749): password, refresh_token, client_credentials; logout and
revocation (RFC 7009). Failures are ``OAuthError`` — the RFC's error object, with the
status and one sentence saying what to do.

Password guessing is throttled per account and per client address: after a run of
failures every attempt is refused with 429 and ``Retry-After`` until the lockout
ends, whether the password is right or not.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import JSONResponse
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth import accounts, crypto
from services.auth.domain import (
    ANONYMOUS,
    GUEST_USERNAME,
    PER_ACCOUNT,
    PER_ADDRESS,
    SCOPES,
    Holder,
    available_scopes,
    effective_scopes,
    normalise_username,
    retry_after,
)
from services.auth.models import RefreshToken
from services.auth.tokens import (
    Issued,
    Issuer,
    RevocationList,
    add_revocation,
    revoke_family,
    utcnow,
)
from services.common.db import Database
from services.common.security import InvalidToken, TokenVerifier

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
GRANTS = ("password", "refresh_token", "client_credentials")
# A rising "refused" or "throttled" rate is what password guessing looks like.
TOKEN_REQUESTS = Counter(
    "imarc_auth_token_requests_total", "Token requests by grant and outcome", ["grant", "outcome"]
)


class OAuthError(Exception):
    def __init__(
        self, status: int, error: str, description: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        headers = dict(NO_STORE)
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        if self.error == "invalid_client":  # RFC 6749 §5.2
            headers["WWW-Authenticate"] = 'Basic realm="imarc"'
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers=headers,
        )


WRONG_PASSWORD = (
    "the username or password is wrong; check them, or ask an administrator to reset it"
)
WRONG_CLIENT = "the client id or secret is wrong; check them, or ask an administrator for a new key"
BAD_REFRESH = "the refresh token is invalid, expired or already used; log in again"


@dataclass(frozen=True)
class TokenRequest:
    grant_type: str
    username: str = ""
    password: str = ""
    client_id: str = ""
    client_secret: str = ""
    refresh_token: str = ""
    scope: str = ""


class OAuth:
    def __init__(
        self,
        db: Database,
        issuer: Issuer,
        verifier: TokenVerifier,
        revocations: RevocationList,
    ) -> None:
        self.db = db
        self.issuer = issuer
        self.verifier = verifier
        self.revocations = revocations

    async def token(self, req: TokenRequest, ip: str) -> Issued:
        grant = req.grant_type if req.grant_type in GRANTS else "other"
        try:
            issued = await self._grant(req, ip)
        except OAuthError as e:
            TOKEN_REQUESTS.labels(grant, "throttled" if e.status == 429 else "refused").inc()
            raise
        TOKEN_REQUESTS.labels(grant, "issued").inc()
        return issued

    async def _grant(self, req: TokenRequest, ip: str) -> Issued:
        await self.issuer.ready()
        if req.grant_type == "password":
            return await self.password(req, ip)
        if req.grant_type == "refresh_token":
            return await self.refresh(req, ip)
        if req.grant_type == "client_credentials":
            return await self.client_credentials(req, ip)
        raise OAuthError(
            400,
            "unsupported_grant_type",
            "grant_type must be password, refresh_token or client_credentials",
        )

    # -- password ------------------------------------------------------------------

    async def password(self, req: TokenRequest, ip: str) -> Issued:
        username = normalise_username(req.username)
        if not username:
            raise OAuthError(400, "invalid_request", "give a username and a password")
        if username == GUEST_USERNAME:
            return await self._guest(req, ip)
        return await self._authenticate(
            name=username,
            kind="user",
            secret=req.password,
            ip=ip,
            client_id=req.client_id,
            scope=req.scope,
            grant="password",
            error="invalid_grant",
            wrong=WRONG_PASSWORD,
        )

    async def client_credentials(self, req: TokenRequest, ip: str) -> Issued:
        if not req.client_id or not req.client_secret:
            raise OAuthError(
                401, "invalid_client", "give client_id and client_secret (or HTTP Basic auth)"
            )
        return await self._authenticate(
            name=req.client_id,
            kind="client",
            secret=req.client_secret,
            ip=ip,
            client_id=req.client_id,
            scope=req.scope,
            grant="client_credentials",
            error="invalid_client",
            wrong=WRONG_CLIENT,
        )

    async def _authenticate(
        self,
        *,
        name: str,
        kind: str,
        secret: str,
        ip: str,
        client_id: str,
        scope: str,
        grant: str,
        error: str,
        wrong: str,
    ) -> Issued:
        now = utcnow()
        name_key = accounts.throttle_key(kind, name)
        ip_key = accounts.throttle_key("ip", ip)
        async with self.db.session() as s:
            async with s.begin():
                acc = await accounts.find_account(s, name, kind)
                # Unknown names are audited by hash: it may be a mistyped password.
                who = acc.name if acc else name_key
                locked = await accounts.locked_until(s, [name_key, ip_key], now)
                if locked is not None:
                    await accounts.audit(s, "login_throttled", subject=who, ip=ip, grant=grant)
            if locked is not None:
                wait = retry_after(locked, now)
                raise OAuthError(
                    429,
                    error,
                    f"too many failed attempts; try again in {wait} seconds",
                    retry_after=wait,
                )
            ok, rehash = await asyncio.to_thread(
                crypto.verify_secret, acc.secret_hash if acc else None, secret
            )
            new_hash = await asyncio.to_thread(crypto.hash_secret, secret) if rehash else None
            now = utcnow()
            async with s.begin():
                if not ok or acc is None:
                    await accounts.record_failure(s, name_key, PER_ACCOUNT, now)
                    await accounts.record_failure(s, ip_key, PER_ADDRESS, now)
                    await accounts.audit(s, "login_failed", subject=who, ip=ip, grant=grant)
                    refused: OAuthError | None = OAuthError(401, error, wrong)
                elif acc.disabled:
                    await accounts.audit(
                        s, "login_denied", subject=who, ip=ip, grant=grant, reason="disabled"
                    )
                    refused = OAuthError(
                        401, error, "this account is disabled; ask an administrator"
                    )
                else:
                    refused = None
                    await accounts.clear_failures(s, name_key)
                    if new_hash:
                        acc.secret_hash = new_hash
                    holder = await accounts.holder_of(s, acc, now)
                    scopes = effective_scopes(available_scopes(holder.rows), scope)
                    issued, _ = await self.issuer.issue(
                        s,
                        holder,
                        scopes=scopes,
                        client_id=client_id,
                        with_refresh=kind == "user",
                    )
                    await accounts.audit(
                        s, "login", actor=acc.name, subject=acc.name, ip=ip, grant=grant
                    )
                    await _audit_issue(s, issued, ip, grant)
        if refused is not None:
            raise refused
        return issued

    async def _guest(self, req: TokenRequest, ip: str) -> Issued:
        """NBIA clients log in as ``nbia_guest`` (any password): an anonymous token."""
        async with self.db.session() as s, s.begin():
            issued, _ = await self.issuer.issue(
                s, Holder(ANONYMOUS), scopes=frozenset({"read"}), client_id=req.client_id
            )
            await _audit_issue(s, issued, ip, "password")
        return issued

    # -- refresh -------------------------------------------------------------------

    async def refresh(self, req: TokenRequest, ip: str) -> Issued:
        if not req.refresh_token:
            raise OAuthError(400, "invalid_request", "give the refresh_token to exchange")
        try:
            claims = await self.verifier.verify(req.refresh_token, typ="refresh")
        except InvalidToken as e:
            raise OAuthError(401, "invalid_grant", BAD_REFRESH) from e
        now = utcnow()
        revoked_family: str | None = None
        issued: Issued | None = None
        async with self.db.session() as s, s.begin():
            row = await s.get(RefreshToken, claims.get("jti", ""))
            if row is None or row.subject != claims["sub"]:
                await accounts.audit(
                    s, "refresh_denied", subject=str(claims["sub"]), ip=ip, reason="unknown token"
                )
            elif row.revoked_at is not None:
                await accounts.audit(
                    s, "refresh_denied", subject=row.subject, ip=ip, reason="session ended"
                )
            elif row.used_at is not None:
                # A refresh token comes back after it was exchanged: someone else may
                # hold it. End the whole session (RFC 9700 §4.14.2).
                await revoke_family(s, row.family, now)
                revoked_family = row.family
                await accounts.audit(
                    s, "refresh_reuse", subject=row.subject, ip=ip, session=row.family
                )
            else:
                holder, why = await self._holder(s, row.subject, now)
                if holder is None:
                    await revoke_family(s, row.family, now)
                    revoked_family = row.family
                    await accounts.audit(
                        s, "refresh_denied", subject=row.subject, ip=ip, reason=why
                    )
                else:
                    granted = frozenset(str(claims.get("scope", "")).split()) & set(SCOPES)
                    available = available_scopes(holder.rows) & granted
                    if row.subject == ANONYMOUS:
                        available = frozenset({"read"})
                    scopes = effective_scopes(available, req.scope)
                    issued, new_jti = await self.issuer.issue(
                        s, holder, scopes=scopes, client_id=row.client_id, family=row.family
                    )
                    row.used_at, row.replaced_by = now, new_jti
                    await _audit_issue(s, issued, ip, "refresh_token")
        if revoked_family is not None:
            self.revocations.note("sid", revoked_family)
        if issued is None:
            raise OAuthError(401, "invalid_grant", BAD_REFRESH)
        return issued

    async def _holder(
        self, s: AsyncSession, subject: str, now: datetime
    ) -> tuple[Holder | None, str]:
        if subject == ANONYMOUS:
            return Holder(ANONYMOUS), ""
        acc = await accounts.find_account(s, subject)
        if acc is None:
            return None, "account removed"
        if acc.disabled:
            return None, "disabled"
        return await accounts.holder_of(s, acc, now), ""

    # -- logout and revocation -----------------------------------------------------

    async def logout(self, claims: dict[str, Any], ip: str) -> None:
        """End the session the access token belongs to, and that token itself."""
        now = utcnow()
        sid = str(claims.get("sid") or "")
        async with self.db.session() as s, s.begin():
            jti = await self._revoke_access(s, claims)
            if sid:
                await revoke_family(s, sid, now)
            await accounts.audit(
                s, "logout", actor=str(claims["sub"]), subject=str(claims["sub"]), ip=ip
            )
        if jti:
            self.revocations.note("jti", jti)
        if sid:
            self.revocations.note("sid", sid)

    async def revoke(self, token: str, ip: str) -> None:
        """RFC 7009: revoke a refresh token (its whole session) or an access token.
        An invalid token is not an error: there is nothing left to revoke."""
        for typ in ("refresh", "access"):
            try:
                claims = await self.verifier.verify(token, typ=typ)
            except InvalidToken:
                continue
            sid = str(claims.get("sid") or "")
            jti = ""
            async with self.db.session() as s, s.begin():
                if typ == "refresh":
                    if sid:
                        await revoke_family(s, sid, utcnow())
                else:
                    jti = await self._revoke_access(s, claims)
                await accounts.audit(
                    s,
                    "revoked",
                    actor=str(claims["sub"]),
                    subject=str(claims["sub"]),
                    ip=ip,
                    token_type=typ,
                )
            if jti:
                self.revocations.note("jti", jti)
            if typ == "refresh" and sid:
                self.revocations.note("sid", sid)
            return

    @staticmethod
    async def _revoke_access(s: AsyncSession, claims: dict[str, Any]) -> str:
        jti = str(claims.get("jti") or "")
        if jti:
            expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
            await add_revocation(s, "jti", jti, expires)
        return jti


async def _audit_issue(s: AsyncSession, issued: Issued, ip: str, grant: str) -> None:
    c = issued.access_claims
    await accounts.audit(
        s,
        "token_issued",
        actor=c["sub"],
        subject=c["sub"],
        ip=ip,
        grant=grant,
        jti=c["jti"],
        scope=issued.scope,
        licences=c.get("lic"),
        client=c.get("azp"),
    )
