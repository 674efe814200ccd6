"""OAuth2 grants (RFC 6749): password, refresh_token, client_credentials; logout and
revocation (RFC 7009). Failures are ``OAuthError`` — the RFC's error object, with the
status and one sentence saying what to do.

Password guessing is throttled per account from an address, per address, and per account
from addresses it never logged in from (``domain.throttle``): after a run of failures every
such attempt is refused with 429 and ``Retry-After`` until the lockout ends, whether the
password is right or not.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth import crypto, queries
from services.auth.domain import (
    ANONYMOUS,
    GUEST_USERNAME,
    SCOPES,
    Holder,
    Unauthenticated,
    available_scopes,
    effective_scopes,
    normalise_username,
    retry_after,
)
from services.auth.models import RefreshToken
from services.auth.service import throttle
from services.auth.service.accounts import holder_of
from services.auth.service.audit import Unit
from services.auth.tokens import Issued, add_revocation, revoke_family, utcnow
from services.common.security import InvalidToken

if TYPE_CHECKING:
    from services.auth.bootstrap import Auth

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
GRANTS = ("password", "refresh_token", "client_credentials")
# A rising "refused" or "throttled" rate is what password guessing looks like.
TOKEN_REQUESTS = Counter(
    "imarc_auth_token_requests_total", "Token requests by grant and outcome", ["grant", "outcome"]
)


class OAuthError(Exception):
    """RFC 6749 §5.2: ``{"error", "error_description"}`` with its status."""

    def __init__(
        self, status: int, error: str, description: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        headers = dict(NO_STORE)
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        if self.error == "invalid_client":  # RFC 6749 §5.2
            headers["WWW-Authenticate"] = 'Basic realm="imarc"'
        return headers


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


async def token(auth: Auth, req: TokenRequest, ip: str) -> Issued:
    grant = req.grant_type if req.grant_type in GRANTS else "other"
    try:
        issued = await _grant(auth, req, ip)
    except OAuthError as e:
        TOKEN_REQUESTS.labels(grant, "throttled" if e.status == 429 else "refused").inc()
        raise
    TOKEN_REQUESTS.labels(grant, "issued").inc()
    return issued


async def _grant(auth: Auth, req: TokenRequest, ip: str) -> Issued:
    await auth.issuer.ready()
    if req.grant_type == "password":
        username = normalise_username(req.username)
        if not username:
            raise OAuthError(400, "invalid_request", "give a username and a password")
        if username == GUEST_USERNAME:
            return await _guest(auth, req, ip)
        return await _authenticate(
            auth, req, ip, name=username, kind="user", secret=req.password, grant="password"
        )
    if req.grant_type == "refresh_token":
        return await _refresh(auth, req, ip)
    if req.grant_type == "client_credentials":
        if not req.client_id or not req.client_secret:
            raise OAuthError(
                401, "invalid_client", "give client_id and client_secret (or HTTP Basic auth)"
            )
        return await _authenticate(
            auth,
            req,
            ip,
            name=req.client_id,
            kind="client",
            secret=req.client_secret,
            grant="client_credentials",
        )
    raise OAuthError(
        400,
        "unsupported_grant_type",
        "grant_type must be password, refresh_token or client_credentials",
    )


async def _authenticate(
    auth: Auth, req: TokenRequest, ip: str, *, name: str, kind: str, secret: str, grant: str
) -> Issued:
    error, wrong = (
        ("invalid_grant", WRONG_PASSWORD) if kind == "user" else ("invalid_client", WRONG_CLIENT)
    )
    now = utcnow()
    attempt = throttle.Attempt(kind, name, ip)
    async with auth.uow(ip=ip) as unit:
        acc = await queries.find_account(unit.session, name, kind)
        # Unknown names are audited by hash: it may be a mistyped password.
        who = acc.name if acc else attempt.account
        locked = await throttle.locked_until(unit.session, attempt, now)
        if locked is not None:
            unit.audit("login_throttled", subject=who, grant=grant)
    if locked is not None:
        wait = retry_after(locked, now)
        raise OAuthError(
            429, error, f"too many failed attempts; try again in {wait} seconds", retry_after=wait
        )
    ok, rehash = await asyncio.to_thread(
        crypto.verify_secret, acc.secret_hash if acc else None, secret
    )
    new_hash = await asyncio.to_thread(crypto.hash_secret, secret) if rehash else None
    now = utcnow()
    async with auth.uow(ip=ip) as unit:
        s = unit.session
        if not ok or acc is None:
            await throttle.record_failure(s, attempt, now)
            unit.audit("login_failed", subject=who, grant=grant)
            raise_after: OAuthError | None = OAuthError(401, error, wrong)
        elif acc.disabled:
            unit.audit("login_denied", subject=who, grant=grant, reason="disabled")
            raise_after = OAuthError(401, error, "this account is disabled; ask an administrator")
        else:
            raise_after = None
            acc = await s.merge(acc, load=False)
            await throttle.record_success(s, attempt, now)
            if new_hash:
                acc.secret_hash = new_hash
            holder = await holder_of(s, acc, now)
            scopes = effective_scopes(available_scopes(holder.rows), req.scope)
            issued, _ = await auth.issuer.issue(
                s, holder, scopes=scopes, client_id=req.client_id, with_refresh=kind == "user"
            )
            unit.audit("login", actor=acc.name, subject=acc.name, grant=grant)
            _audit_issue(unit, issued, grant)
    if raise_after is not None:
        raise raise_after
    return issued


async def _guest(auth: Auth, req: TokenRequest, ip: str) -> Issued:
    """NBIA clients log in as ``nbia_guest`` (any password): an anonymous token."""
    async with auth.uow(ip=ip) as unit:
        issued, _ = await auth.issuer.issue(
            unit.session, Holder(ANONYMOUS), scopes=frozenset({"read"}), client_id=req.client_id
        )
        _audit_issue(unit, issued, "password")
    return issued


def _audit_issue(unit: Unit, issued: Issued, grant: str) -> None:
    c = issued.access_claims
    unit.audit(
        "token_issued",
        actor=c["sub"],
        subject=c["sub"],
        grant=grant,
        jti=c["jti"],
        scope=issued.scope,
        licences=c.get("lic"),
        client=c.get("azp"),
    )


# -- refresh ---------------------------------------------------------------------------


async def _refresh(auth: Auth, req: TokenRequest, ip: str) -> Issued:
    if not req.refresh_token:
        raise OAuthError(400, "invalid_request", "give the refresh_token to exchange")
    try:
        claims = await auth.verifier.verify(req.refresh_token, typ="refresh")
    except InvalidToken as e:
        raise OAuthError(401, "invalid_grant", BAD_REFRESH) from e
    now = utcnow()
    revoked_family: str | None = None
    issued: Issued | None = None
    async with auth.uow(ip=ip) as unit:
        s = unit.session
        row = await s.get(RefreshToken, claims.get("jti", ""))
        if row is None or row.subject != claims["sub"]:
            unit.audit("refresh_denied", subject=str(claims["sub"]), reason="unknown token")
        elif row.revoked_at is not None:
            unit.audit("refresh_denied", subject=row.subject, reason="session ended")
        elif row.used_at is not None:
            # A refresh token comes back after it was exchanged: someone else may hold
            # it. End the whole session (RFC 9700 §4.14.2).
            await revoke_family(s, row.family, now)
            revoked_family = row.family
            unit.audit("refresh_reuse", subject=row.subject, session=row.family)
        else:
            holder, why = await _holder(s, row.subject, now)
            if holder is None:
                await revoke_family(s, row.family, now)
                revoked_family = row.family
                unit.audit("refresh_denied", subject=row.subject, reason=why)
            else:
                granted = frozenset(str(claims.get("scope", "")).split()) & set(SCOPES)
                available = available_scopes(holder.rows) & granted
                if row.subject == ANONYMOUS:
                    available = frozenset({"read"})
                scopes = effective_scopes(available, req.scope)
                issued, new_jti = await auth.issuer.issue(
                    s, holder, scopes=scopes, client_id=row.client_id, family=row.family
                )
                row.used_at, row.replaced_by = now, new_jti
                _audit_issue(unit, issued, "refresh_token")
    if revoked_family is not None:
        auth.revocations.note("sid", revoked_family)
    if issued is None:
        raise OAuthError(401, "invalid_grant", BAD_REFRESH)
    return issued


async def _holder(s: AsyncSession, subject: str, now: datetime) -> tuple[Holder | None, str]:
    if subject == ANONYMOUS:
        return Holder(ANONYMOUS), ""
    acc = await queries.find_account(s, subject)
    if acc is None:
        return None, "account removed"
    if acc.disabled:
        return None, "disabled"
    return await holder_of(s, acc, now), ""


# -- logout and revocation -------------------------------------------------------------


async def logout(auth: Auth, raw: str | None, ip: str, *, required: bool) -> None:
    """End the session the bearer access token belongs to, and that token itself. NBIA's
    logout (``required`` false) answers the same with no token or a broken one."""
    if raw is None:
        if required:
            raise Unauthenticated("send the bearer token of the session to end")
        return
    try:
        claims = await auth.verifier.verify(raw)
    except InvalidToken as e:
        if required:
            raise Unauthenticated(str(e)) from e
        return
    now = utcnow()
    sid = str(claims.get("sid") or "")
    async with auth.uow(ip=ip) as unit:
        jti = await _revoke_access(unit.session, claims)
        if sid:
            await revoke_family(unit.session, sid, now)
        unit.audit("logout", actor=str(claims["sub"]), subject=str(claims["sub"]))
    if jti:
        auth.revocations.note("jti", jti)
    if sid:
        auth.revocations.note("sid", sid)


async def revoke(auth: Auth, token: str, ip: str) -> None:
    """RFC 7009: revoke a refresh token (its whole session) or an access token. An
    invalid token is not an error: there is nothing left to revoke."""
    for typ in ("refresh", "access"):
        try:
            claims = await auth.verifier.verify(token, typ=typ)
        except InvalidToken:
            continue
        sid = str(claims.get("sid") or "")
        jti = ""
        async with auth.uow(ip=ip) as unit:
            if typ == "refresh":
                if sid:
                    await revoke_family(unit.session, sid, utcnow())
            else:
                jti = await _revoke_access(unit.session, claims)
            unit.audit(
                "revoked", actor=str(claims["sub"]), subject=str(claims["sub"]), token_type=typ
            )
        if jti:
            auth.revocations.note("jti", jti)
        if typ == "refresh" and sid:
            auth.revocations.note("sid", sid)
        return


async def _revoke_access(s: AsyncSession, claims: dict[str, Any]) -> str:
    jti = str(claims.get("jti") or "")
    if jti:
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
        await add_revocation(s, "jti", jti, expires)
    return jti
