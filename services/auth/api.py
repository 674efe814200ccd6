"""HTTP API of the auth service: OAuth2 token endpoints (NBIA-compatible), JWKS, the
caller's own account, and the admin/manager APIs for users, roles, grants, licences,
machine clients, signing keys and the audit log.

Role and licence changes take effect in the next token (at the latest after the
one-hour life of an access token, or at once by refreshing).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from fastapi import APIRouter, Body, Form, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth import accounts, crypto, domain
from services.auth.models import (
    Account,
    AuditEntry,
    Collection,
    CollectionGrant,
    Licence,
    LicenceAcceptance,
)
from services.auth.oauth import NO_STORE, OAuth, OAuthError, TokenRequest
from services.auth.schemas import (
    AcceptanceOut,
    ApproveIn,
    AuditOut,
    ClientCreate,
    ClientCreated,
    GrantIn,
    GrantOut,
    KeyOut,
    LicenceIn,
    LicenceOut,
    LicenceUpdate,
    PasswordChange,
    PasswordReset,
    PasswordResetOut,
    PolicyOut,
    RoleIn,
    RoleOut,
    RotateOut,
    UserCreate,
    UserOut,
)
from services.auth.tokens import KeyRing, RevocationList, revoke_subject_sessions, utcnow
from services.common.security import (
    AuthenticatedPrincipal,
    CurrentPrincipal,
    InvalidToken,
    Principal,
    bearer,
    forbid,
)
from services.common.service import ServiceContext

LOGGED_OUT = "You Have Logged Out successfully."


def client_ip(request: Request) -> str:
    """The caller's address: the entry our own proxy (the gateway) appended to
    X-Forwarded-For, else the peer. Earlier entries are client-supplied and untrusted."""
    # The gateway adds its own header line after any the client sent: read the last.
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    if forwarded.strip(", "):
        return forwarded.rstrip(", ").split(",")[-1].strip()[:64]
    return request.client.host if request.client else ""


def _basic_credentials(request: Request) -> tuple[str, str]:
    """Client credentials from HTTP Basic (RFC 6749 §2.3.1: form-urlencoded, then base64)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return "", ""
    try:
        user, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return unquote(user), unquote(password)


def _role_out(row: domain.RoleRow) -> RoleOut:
    return RoleOut(role=row.role, collection=row.collection or None, site=row.site or None)


def _acceptance_out(row: LicenceAcceptance, username: str, now: datetime) -> AcceptanceOut:
    return AcceptanceOut(
        username=username,
        licence_id=row.licence_id,
        status=row.status,  # type: ignore[arg-type]
        active=domain.acceptance_active(row.status, row.expires_at, now),
        requested_at=row.requested_at,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
        expires_at=row.expires_at,
    )


def _grant_out(row: CollectionGrant, now: datetime) -> GrantOut:
    return GrantOut(
        collection=row.collection,
        granted_by=row.granted_by,
        granted_at=row.granted_at,
        expires_at=row.expires_at,
        active=domain.grant_active(row.expires_at, now),
    )


async def _user_out(s: AsyncSession, acc: Account) -> UserOut:
    now = utcnow()
    return UserOut(
        username=acc.name,
        kind=acc.kind,  # type: ignore[arg-type]
        email=acc.email,
        name=acc.display_name,
        disabled=acc.disabled,
        created_at=acc.created_at,
        created_by=acc.created_by,
        policy_accepted_at=acc.policy_accepted_at,
        roles=[_role_out(r) for r in await accounts.role_rows(s, acc.id)],
        grants=[_grant_out(g, now) for g in await accounts.grants_of(s, acc.id)],
        licences=[
            _acceptance_out(a, acc.name, now) for a in await accounts.acceptances_of(s, acc.id)
        ],
    )


def _licence_out(lic: Licence) -> LicenceOut:
    return LicenceOut(
        id=lic.id,
        name=lic.name,
        url=lic.url,
        text=lic.text,
        commercial_use=lic.commercial_use,
        requires_approval=lic.requires_approval,
        created_at=lic.created_at,
        updated_at=lic.updated_at,
    )


def _role_row(body: RoleIn | None = None, **kw: Any) -> domain.RoleRow:
    src = body.model_dump() if body else kw
    row = domain.RoleRow(src["role"], src.get("collection") or "", src.get("site") or "")
    if problem := domain.role_problem(row.role, row.collection, row.site):
        raise HTTPException(422, problem)
    return row


def router(ctx: ServiceContext) -> APIRouter:
    r = APIRouter(tags=["auth"])

    def oauth() -> OAuth:
        o: OAuth = ctx.state["oauth"]
        return o

    def keyring() -> KeyRing:
        k: KeyRing = ctx.state["keyring"]
        return k

    def revocations() -> RevocationList:
        rl: RevocationList = ctx.state["revocations"]
        return rl

    async def deny(request: Request, principal: Principal, what: str) -> HTTPException:
        """A 403, recorded in the audit log."""
        async with ctx.db.session() as s, s.begin():
            await accounts.audit(
                s,
                "denied",
                actor=principal.subject,
                subject=request.url.path,
                ip=client_ip(request),
                method=request.method,
                what=what,
            )
        return forbid(what)

    async def require_admin(request: Request, principal: Principal, what: str) -> None:
        if not principal.is_admin:
            raise await deny(request, principal, what)

    # -- OAuth2 --------------------------------------------------------------------

    async def token(
        request: Request,
        grant_type: Annotated[str, Form()] = "",
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        client_id: Annotated[str, Form()] = "",
        client_secret: Annotated[str, Form()] = "",
        refresh_token: Annotated[str, Form()] = "",
        scope: Annotated[str, Form()] = "",
    ) -> JSONResponse:
        """OAuth2 token endpoint: grant_type password, refresh_token or client_credentials.
        Replies ``{access_token, token_type, expires_in, refresh_token,
        refresh_expires_in, scope}`` (the shape NBIA clients read)."""
        if not client_id or not client_secret:
            basic_id, basic_secret = _basic_credentials(request)
            client_id, client_secret = client_id or basic_id, client_secret or basic_secret
        req = TokenRequest(
            grant_type=grant_type.strip(),
            username=username,
            password=password,
            client_id=client_id.strip(),
            client_secret=client_secret,
            refresh_token=refresh_token.strip(),
            scope=scope,
        )
        try:
            issued = await oauth().token(req, client_ip(request))
        except OAuthError as e:
            return e.response()
        return JSONResponse(issued.reply(), headers=NO_STORE)

    r.add_api_route("/nbia-api/oauth/token", token, methods=["POST"], summary="Token (NBIA)")
    r.add_api_route("/api/auth/token", token, methods=["POST"], summary="Token")

    async def _logout(request: Request, *, required: bool) -> None:
        raw = bearer(request)
        if raw is None:
            if required:
                raise HTTPException(401, "send the bearer token of the session to end")
            return
        try:
            claims = await ctx.verifier.verify(raw) if ctx.verifier else None
        except InvalidToken as e:
            if required:
                raise HTTPException(401, str(e)) from e
            return
        if claims is not None:
            await oauth().logout(claims, client_ip(request))

    @r.post("/api/auth/logout")
    async def logout(request: Request) -> dict[str, bool]:
        """End the session of the bearer token: it and its refresh tokens stop working."""
        await _logout(request, required=True)
        return {"logged_out": True}

    @r.get("/nbia-api/logout", response_class=PlainTextResponse)
    async def nbia_logout(request: Request) -> str:
        await _logout(request, required=False)
        return LOGGED_OUT

    @r.post("/api/auth/revoke")
    async def revoke(request: Request, token: Annotated[str, Form()] = "") -> Response:
        """RFC 7009 token revocation: a refresh token ends its session; an access token
        stops working. Always 200, as the RFC asks, even for an unknown token."""
        if token.strip():
            await oauth().revoke(token.strip(), client_ip(request))
        return Response(status_code=200, headers=NO_STORE)

    @r.get("/api/auth/revocations")
    async def revocation_list() -> JSONResponse:
        """Revoked tokens and sessions, for the other services' token checks (they poll
        it every few seconds); opaque ids and hashed account names only."""
        return JSONResponse(await revocations().listing(), headers=NO_STORE)

    @r.get("/api/auth/.well-known/jwks.json")
    async def jwks() -> JSONResponse:
        await keyring().refresh()
        return JSONResponse(keyring().jwks(), headers={"Cache-Control": "max-age=60"})

    # -- the caller's own account ----------------------------------------------------

    async def _own(s: AsyncSession, principal: Principal) -> Account:
        acc = await accounts.find_account(s, principal.subject)
        if acc is None:
            raise HTTPException(404, "your account no longer exists; register or log in again")
        return acc

    @r.get("/api/auth/me", response_model=UserOut)
    async def me(principal: AuthenticatedPrincipal) -> UserOut:
        async with ctx.db.session() as s:
            return await _user_out(s, await _own(s, principal))

    @r.get("/api/auth/policy", response_model=PolicyOut)
    async def policy(principal: CurrentPrincipal) -> PolicyOut:
        """The data usage policy every user accepts once."""
        accepted = None
        if not principal.anonymous:
            async with ctx.db.session() as s:
                acc = await accounts.find_account(s, principal.subject)
                accepted = acc.policy_accepted_at if acc else None
        return PolicyOut(
            version=domain.POLICY_VERSION, text=domain.DATA_USAGE_POLICY, accepted_at=accepted
        )

    @r.post("/api/auth/me/accept-policy", response_model=PolicyOut)
    async def accept_policy(request: Request, principal: AuthenticatedPrincipal) -> PolicyOut:
        """Accept the data usage policy; tokens issued from now on carry ``dup: true``."""
        async with ctx.db.session() as s, s.begin():
            acc = await _own(s, principal)
            if acc.policy_accepted_at is None:
                acc.policy_accepted_at = utcnow()
                await accounts.audit(
                    s,
                    "policy_accepted",
                    actor=acc.name,
                    subject=acc.name,
                    ip=client_ip(request),
                    version=domain.POLICY_VERSION,
                )
            accepted = acc.policy_accepted_at
        return PolicyOut(
            version=domain.POLICY_VERSION, text=domain.DATA_USAGE_POLICY, accepted_at=accepted
        )

    @r.post("/api/auth/me/password", status_code=204)
    async def change_password(
        request: Request, body: PasswordChange, principal: AuthenticatedPrincipal
    ) -> None:
        """Change one's own password. Wrong current passwords count towards the same
        lockout as failed logins: a stolen token must not become a guessing oracle."""
        now = utcnow()
        key = accounts.throttle_key("user", principal.subject)
        async with ctx.db.session() as s:
            acc = await _own(s, principal)
            locked = await accounts.locked_until(s, [key], now)
        if locked is not None:
            wait = domain.retry_after(locked, now)
            raise HTTPException(
                429,
                f"too many failed attempts; try again in {wait} seconds",
                headers={"Retry-After": str(wait)},
            )
        new = body.new_password.get_secret_value()
        if problem := domain.password_problem(new, acc.name):
            raise HTTPException(422, problem)
        ok, _ = await asyncio.to_thread(
            crypto.verify_secret, acc.secret_hash, body.current_password.get_secret_value()
        )
        new_hash = await asyncio.to_thread(crypto.hash_secret, new) if ok else ""
        async with ctx.db.session() as s, s.begin():
            acc = await _own(s, principal)
            if ok:
                acc.secret_hash, acc.secret_changed_at = new_hash, utcnow()
                await accounts.clear_failures(s, key)
            else:
                await accounts.record_failure(s, key, domain.PER_ACCOUNT, utcnow())
            await accounts.audit(
                s,
                "password_changed" if ok else "password_change_failed",
                actor=acc.name,
                subject=acc.name,
                ip=client_ip(request),
            )
        if not ok:
            raise HTTPException(403, "the current password is wrong; try again")

    @r.get("/api/auth/me/licences", response_model=list[AcceptanceOut])
    async def my_licences(principal: AuthenticatedPrincipal) -> list[AcceptanceOut]:
        async with ctx.db.session() as s:
            acc = await _own(s, principal)
            now = utcnow()
            return [
                _acceptance_out(a, acc.name, now) for a in await accounts.acceptances_of(s, acc.id)
            ]

    @r.post("/api/auth/me/licences/{licence_id}", response_model=AcceptanceOut)
    async def accept_licence(
        request: Request, licence_id: str, principal: AuthenticatedPrincipal
    ) -> AcceptanceOut:
        """Accept a licence: open licences are approved at once; restricted ones are
        recorded as a request for an admin or a collection's manager to approve."""
        async with ctx.db.session() as s, s.begin():
            acc = await _own(s, principal)
            lic = await accounts.get_licence(s, licence_id)
            row, changed = await accounts.request_licence(s, acc, lic, utcnow())
            if changed:
                await accounts.audit(
                    s,
                    "licence_approved" if row.status == "approved" else "licence_requested",
                    actor=acc.name,
                    subject=acc.name,
                    ip=client_ip(request),
                    licence=lic.id,
                    self_approved=row.status == "approved",
                )
            return _acceptance_out(row, acc.name, utcnow())

    # -- users -----------------------------------------------------------------------

    @r.post("/api/auth/users", response_model=UserOut, status_code=201)
    async def register(request: Request, body: UserCreate, principal: CurrentPrincipal) -> UserOut:
        """Self-registration (role user); an admin may also give roles."""
        name = domain.normalise_username(body.username)
        password = body.password.get_secret_value()
        if body.roles and not principal.is_admin:
            raise await deny(request, principal, "create accounts with roles")
        for problem in (
            domain.username_problem(name),
            domain.password_problem(password, name),
            domain.email_problem(body.email),
        ):
            if problem:
                raise HTTPException(422, problem)
        rows = [domain.RoleRow("user"), *(_role_row(x) for x in body.roles)]
        secret_hash = await asyncio.to_thread(crypto.hash_secret, password)
        async with ctx.db.session() as s, s.begin():
            by = "self" if principal.anonymous else principal.subject
            acc = await accounts.create_account(
                s,
                name=name,
                kind="user",
                secret_hash=secret_hash,
                created_by=by,
                now=utcnow(),
                roles=rows,
                email=body.email.strip(),
                display_name=body.name.strip(),
            )
            await accounts.audit(
                s,
                "user_created",
                actor=by,
                subject=name,
                ip=client_ip(request),
                roles=[r.role for r in rows if r.role != "user"],
            )
            return await _user_out(s, acc)

    @r.get("/api/auth/users", response_model=list[UserOut])
    async def list_users(
        request: Request,
        principal: AuthenticatedPrincipal,
        q: str = "",
        kind: Literal["user", "client"] = "user",
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[UserOut]:
        await require_admin(request, principal, "list accounts")
        async with ctx.db.session() as s:
            stmt = select(Account).where(Account.kind == kind).order_by(Account.name).limit(limit)
            if q:
                stmt = stmt.where(Account.name.contains(q.lower()))
            return [await _user_out(s, a) for a in await s.scalars(stmt)]

    @r.get("/api/auth/users/{username}", response_model=UserOut)
    async def get_user(
        request: Request, username: str, principal: AuthenticatedPrincipal
    ) -> UserOut:
        name = domain.normalise_username(username)
        if name != principal.subject:
            await require_admin(request, principal, "see other accounts")
        async with ctx.db.session() as s:
            return await _user_out(s, await accounts.get_account(s, name))

    async def _set_disabled(
        request: Request, username: str, principal: Principal, disabled: bool
    ) -> UserOut:
        await require_admin(request, principal, "disable or enable accounts")
        name = domain.normalise_username(username)
        if disabled and name == principal.subject:
            raise HTTPException(409, "you cannot disable your own account; ask another admin")
        async with ctx.db.session() as s, s.begin():
            acc = await accounts.get_account(s, name)
            acc.disabled = disabled
            if disabled:
                await revoke_subject_sessions(s, acc.name, utcnow())
            await accounts.audit(
                s,
                "account_disabled" if disabled else "account_enabled",
                actor=principal.subject,
                subject=acc.name,
                ip=client_ip(request),
            )
            out = await _user_out(s, acc)
        if disabled:
            revocations().note("sub", acc.name)
        else:
            revocations().forget_disabled(acc.name)
        return out

    @r.post("/api/auth/users/{username}/disable", response_model=UserOut)
    async def disable_user(
        request: Request, username: str, principal: AuthenticatedPrincipal
    ) -> UserOut:
        """Disable an account: it cannot log in and its tokens stop working at once."""
        return await _set_disabled(request, username, principal, True)

    @r.post("/api/auth/users/{username}/enable", response_model=UserOut)
    async def enable_user(
        request: Request, username: str, principal: AuthenticatedPrincipal
    ) -> UserOut:
        return await _set_disabled(request, username, principal, False)

    @r.post("/api/auth/users/{username}/password", response_model=PasswordResetOut)
    async def reset_password(
        request: Request,
        username: str,
        principal: AuthenticatedPrincipal,
        body: PasswordReset | None = None,
    ) -> PasswordResetOut:
        """An admin sets a new password (or gets a generated one, shown once); the
        account's sessions end."""
        await require_admin(request, principal, "reset passwords")
        name = domain.normalise_username(username)
        given = body.password.get_secret_value() if body and body.password else None
        password = given or crypto.new_password()
        if given and (problem := domain.password_problem(given, name)):
            raise HTTPException(422, problem)
        new_hash = await asyncio.to_thread(crypto.hash_secret, password)
        async with ctx.db.session() as s, s.begin():
            acc = await accounts.get_account(s, name)
            if acc.kind != "user":
                raise HTTPException(
                    409, "a client has a secret, not a password; create a new client instead"
                )
            acc.secret_hash, acc.secret_changed_at = new_hash, utcnow()
            families = await revoke_subject_sessions(s, acc.name, utcnow())
            await accounts.audit(
                s,
                "password_reset",
                actor=principal.subject,
                subject=acc.name,
                ip=client_ip(request),
                generated=given is None,
            )
        for f in families:
            revocations().note("sid", f)
        return PasswordResetOut(username=name, password=None if given else password)

    # -- roles and grants ------------------------------------------------------------

    @r.post("/api/auth/users/{username}/roles", response_model=UserOut)
    async def grant_role(
        request: Request,
        username: str,
        body: RoleIn,
        principal: AuthenticatedPrincipal,
        response: Response,
    ) -> UserOut:
        """Give a role. Admins give any; managers give submitter and curator roles on
        the collections they manage. 201 when new, 200 when the account had it."""
        row = _role_row(body)
        if not domain.may_grant_role(principal, row.role, row.collection):
            raise await deny(request, principal, f"give the {row.role} role here")
        async with ctx.db.session() as s, s.begin():
            acc = await accounts.get_account(s, domain.normalise_username(username))
            added = await accounts.add_role(s, acc, row, by=principal.subject, now=utcnow())
            if added:
                await accounts.audit(
                    s,
                    "role_granted",
                    actor=principal.subject,
                    subject=acc.name,
                    ip=client_ip(request),
                    role=row.role,
                    collection=row.collection,
                    site=row.site,
                )
            response.status_code = 201 if added else 200
            return await _user_out(s, acc)

    @r.delete("/api/auth/users/{username}/roles", status_code=204)
    async def revoke_role(
        request: Request,
        username: str,
        principal: AuthenticatedPrincipal,
        role: str = "",
        collection: str = "",
        site: str = "",
        body: Annotated[RoleIn | None, Body()] = None,
    ) -> None:
        """Take a role away; the role is named in the query (``?role=&collection=&site=``)
        or in a JSON body like the one that gave it."""
        if body is None and not role:
            raise HTTPException(422, "name the role to take away (?role=...&collection=...)")
        row = _role_row(body) if body else _role_row(role=role, collection=collection, site=site)
        if not domain.may_grant_role(principal, row.role, row.collection):
            raise await deny(request, principal, f"take the {row.role} role away here")
        async with ctx.db.session() as s, s.begin():
            acc = await accounts.get_account(s, domain.normalise_username(username))
            if not await accounts.remove_role(s, acc, row):
                raise HTTPException(404, f"{acc.name!r} does not have that role; nothing to do")
            await accounts.audit(
                s,
                "role_revoked",
                actor=principal.subject,
                subject=acc.name,
                ip=client_ip(request),
                role=row.role,
                collection=row.collection,
                site=row.site,
            )

    @r.post("/api/auth/users/{username}/grants", response_model=GrantOut, status_code=201)
    async def add_grant(
        request: Request, username: str, body: GrantIn, principal: AuthenticatedPrincipal
    ) -> GrantOut:
        """Grant access to a limited collection (admin, or the collection's manager)."""
        if problem := domain.collection_problem(body.collection):
            raise HTTPException(422, problem)
        if not domain.may_grant_collection(principal, body.collection):
            raise await deny(request, principal, f"grant access to {body.collection}")
        async with ctx.db.session() as s, s.begin():
            acc = await accounts.get_account(s, domain.normalise_username(username))
            now = utcnow()
            grant = await accounts.set_grant(
                s, acc, body.collection, by=principal.subject, now=now, expires_at=body.expires_at
            )
            await accounts.audit(
                s,
                "grant_added",
                actor=principal.subject,
                subject=acc.name,
                ip=client_ip(request),
                collection=body.collection,
                expires_at=body.expires_at.isoformat() if body.expires_at else None,
            )
            return _grant_out(grant, now)

    @r.delete("/api/auth/users/{username}/grants/{collection}", status_code=204)
    async def remove_grant(
        request: Request, username: str, collection: str, principal: AuthenticatedPrincipal
    ) -> None:
        if not domain.may_grant_collection(principal, collection):
            raise await deny(request, principal, f"remove access to {collection}")
        async with ctx.db.session() as s, s.begin():
            acc = await accounts.get_account(s, domain.normalise_username(username))
            if not await accounts.remove_grant(s, acc, collection):
                raise HTTPException(404, f"{acc.name!r} has no grant on {collection}")
            await accounts.audit(
                s,
                "grant_removed",
                actor=principal.subject,
                subject=acc.name,
                ip=client_ip(request),
                collection=collection,
            )

    # -- licences --------------------------------------------------------------------

    @r.get("/api/auth/licences", response_model=list[LicenceOut])
    async def list_licences() -> list[LicenceOut]:
        async with ctx.db.session() as s:
            return [_licence_out(x) for x in await s.scalars(select(Licence).order_by(Licence.id))]

    @r.get("/api/auth/licences/{licence_id}", response_model=LicenceOut)
    async def get_licence(licence_id: str) -> LicenceOut:
        async with ctx.db.session() as s:
            return _licence_out(await accounts.get_licence(s, licence_id))

    @r.post("/api/auth/licences", response_model=LicenceOut, status_code=201)
    async def create_licence(
        request: Request, body: LicenceIn, principal: AuthenticatedPrincipal
    ) -> LicenceOut:
        await require_admin(request, principal, "create licences")
        if problem := domain.licence_id_problem(body.id):
            raise HTTPException(422, problem)
        now = utcnow()
        async with ctx.messaging.transaction() as tx:
            s = tx.session
            if await s.get(Licence, body.id) is not None:
                raise HTTPException(409, f"licence {body.id!r} exists; change it with PATCH")
            lic = Licence(**body.model_dump(), created_at=now, updated_at=now)
            s.add(lic)
            await accounts.audit(
                s,
                "licence_created",
                actor=principal.subject,
                subject=body.id,
                ip=client_ip(request),
            )
            tx.emit(accounts.licence_updated(lic, ctx.source))
            return _licence_out(lic)

    @r.patch("/api/auth/licences/{licence_id}", response_model=LicenceOut)
    async def update_licence(
        request: Request, licence_id: str, body: LicenceUpdate, principal: AuthenticatedPrincipal
    ) -> LicenceOut:
        await require_admin(request, principal, "change licences")
        async with ctx.messaging.transaction() as tx:
            s = tx.session
            lic = await accounts.get_licence(s, licence_id)
            changes = body.model_dump(exclude_none=True)
            for k, v in changes.items():
                setattr(lic, k, v)
            lic.updated_at = utcnow()
            await accounts.audit(
                s,
                "licence_changed",
                actor=principal.subject,
                subject=lic.id,
                ip=client_ip(request),
                fields=sorted(changes),
            )
            tx.emit(accounts.licence_updated(lic, ctx.source))
            return _licence_out(lic)

    @r.delete("/api/auth/licences/{licence_id}", status_code=204)
    async def delete_licence(
        request: Request, licence_id: str, principal: AuthenticatedPrincipal
    ) -> None:
        await require_admin(request, principal, "delete licences")
        async with ctx.messaging.transaction() as tx:
            s = tx.session
            lic = await accounts.get_licence(s, licence_id)
            used = await s.scalar(
                select(func.count())
                .select_from(LicenceAcceptance)
                .where(LicenceAcceptance.licence_id == lic.id)
            ) or await s.scalar(
                select(func.count()).select_from(Collection).where(Collection.licence_id == lic.id)
            )
            if used:
                raise HTTPException(
                    409,
                    f"licence {lic.id!r} is in use by collections or acceptances; "
                    "change its text instead",
                )
            await s.delete(lic)
            await accounts.audit(
                s,
                "licence_deleted",
                actor=principal.subject,
                subject=lic.id,
                ip=client_ip(request),
            )
            tx.emit(accounts.licence_updated(lic, ctx.source, deleted=True))

    @r.get("/api/auth/licence-requests", response_model=list[AcceptanceOut])
    async def licence_requests(
        request: Request,
        principal: AuthenticatedPrincipal,
        status: str = "requested",
    ) -> list[AcceptanceOut]:
        """Acceptances waiting for approval: all of them for an admin, those of the
        licences of their collections for a manager."""
        mine: set[str] | None = None
        if not principal.is_admin:
            async with ctx.db.session() as s:
                mine = domain.managed_licences(principal, await accounts.collection_licences(s))
            if not mine:
                raise await deny(request, principal, "see licence requests")
        stmt = (
            select(LicenceAcceptance, Account.name)
            .join(Account, Account.id == LicenceAcceptance.account_id)
            .where(LicenceAcceptance.status == status)
            .order_by(LicenceAcceptance.requested_at)
        )
        if mine is not None:
            stmt = stmt.where(LicenceAcceptance.licence_id.in_(mine))
        now = utcnow()
        async with ctx.db.session() as s:
            return [_acceptance_out(a, name, now) for a, name in (await s.execute(stmt)).all()]

    @r.post(
        "/api/auth/users/{username}/licences/{licence_id}/approve", response_model=AcceptanceOut
    )
    async def approve_licence(
        request: Request,
        username: str,
        licence_id: str,
        principal: AuthenticatedPrincipal,
        body: ApproveIn | None = None,
    ) -> AcceptanceOut:
        """Approve a licence for an account (admin, or a manager of a collection under
        that licence), optionally until ``expires_at``."""
        async with ctx.db.session() as s:
            allowed = domain.may_approve_licence(
                principal, licence_id, await accounts.collection_licences(s)
            )
        if not allowed:
            raise await deny(request, principal, f"approve the {licence_id} licence")
        expires = body.expires_at if body else None
        now = utcnow()
        if expires is not None and expires <= now:
            raise HTTPException(422, "expires_at is in the past; give a future date")
        async with ctx.db.session() as s, s.begin():
            acc = await accounts.get_account(s, domain.normalise_username(username))
            lic = await accounts.get_licence(s, licence_id)
            row = await accounts.approve_licence(
                s, acc, lic, by=principal.subject, now=now, expires_at=expires
            )
            await accounts.audit(
                s,
                "licence_approved",
                actor=principal.subject,
                subject=acc.name,
                ip=client_ip(request),
                licence=lic.id,
                expires_at=expires.isoformat() if expires else None,
            )
            return _acceptance_out(row, acc.name, now)

    @r.delete("/api/auth/users/{username}/licences/{licence_id}", status_code=204)
    async def revoke_licence(
        request: Request, username: str, licence_id: str, principal: AuthenticatedPrincipal
    ) -> None:
        async with ctx.db.session() as s:
            allowed = domain.may_approve_licence(
                principal, licence_id, await accounts.collection_licences(s)
            )
        if not allowed:
            raise await deny(request, principal, f"revoke the {licence_id} licence")
        async with ctx.db.session() as s, s.begin():
            acc = await accounts.get_account(s, domain.normalise_username(username))
            row = await accounts.acceptance(s, acc.id, licence_id)
            if row is None or row.status == "revoked":
                raise HTTPException(404, f"{acc.name!r} holds no {licence_id} licence")
            row.status = "revoked"
            await accounts.audit(
                s,
                "licence_revoked",
                actor=principal.subject,
                subject=acc.name,
                ip=client_ip(request),
                licence=licence_id,
            )

    # -- machine clients -------------------------------------------------------------

    @r.post("/api/auth/clients", response_model=ClientCreated, status_code=201)
    async def create_client(
        request: Request, body: ClientCreate, principal: AuthenticatedPrincipal
    ) -> ClientCreated:
        """An API key for a machine client (a mirror, a submitter's tool): the secret is
        shown once and stored hashed; the client gets its own roles, grants, licences."""
        await require_admin(request, principal, "create API clients")
        rows = [_role_row(x) for x in body.roles]
        for c in body.grants:
            if problem := domain.collection_problem(c):
                raise HTTPException(422, problem)
        client_id = crypto.new_client_id(domain.CLIENT_PREFIX)
        secret = crypto.new_client_secret()
        secret_hash = await asyncio.to_thread(crypto.hash_secret, secret)
        now = utcnow()
        async with ctx.db.session() as s, s.begin():
            # Machine clients act under the policy their admin agreed to on their behalf.
            acc = await accounts.create_account(
                s,
                name=client_id,
                kind="client",
                secret_hash=secret_hash,
                created_by=principal.subject,
                now=now,
                roles=rows,
                display_name=body.name,
                policy_accepted=True,
            )
            for c in body.grants:
                await accounts.set_grant(s, acc, c, by=principal.subject, now=now, expires_at=None)
            for lid in body.licences:
                lic = await accounts.get_licence(s, lid)
                await accounts.approve_licence(
                    s, acc, lic, by=principal.subject, now=now, expires_at=None
                )
            await accounts.audit(
                s,
                "client_created",
                actor=principal.subject,
                subject=client_id,
                ip=client_ip(request),
                roles=[x.role for x in rows],
                grants=body.grants,
                licences=body.licences,
            )
        return ClientCreated(client_id=client_id, client_secret=secret, name=body.name)

    @r.get("/api/auth/clients", response_model=list[UserOut])
    async def list_clients(request: Request, principal: AuthenticatedPrincipal) -> list[UserOut]:
        await require_admin(request, principal, "list API clients")
        async with ctx.db.session() as s:
            stmt = select(Account).where(Account.kind == "client").order_by(Account.name)
            return [await _user_out(s, a) for a in await s.scalars(stmt)]

    @r.delete("/api/auth/clients/{client_id}", status_code=204)
    async def delete_client(
        request: Request, client_id: str, principal: AuthenticatedPrincipal
    ) -> None:
        """Revoke an API key: the client is disabled and its tokens stop working."""
        await require_admin(request, principal, "revoke API clients")
        async with ctx.db.session() as s, s.begin():
            acc = await accounts.find_account(s, client_id, "client")
            if acc is None:
                raise HTTPException(404, f"there is no client {client_id!r}")
            acc.disabled = True
            await accounts.audit(
                s,
                "client_revoked",
                actor=principal.subject,
                subject=client_id,
                ip=client_ip(request),
            )
        revocations().note("sub", client_id)

    # -- keys and audit --------------------------------------------------------------

    @r.get("/api/auth/keys", response_model=list[KeyOut])
    async def list_keys(request: Request, principal: AuthenticatedPrincipal) -> list[KeyOut]:
        await require_admin(request, principal, "see signing keys")
        return [
            KeyOut(
                kid=k.kid,
                state=k.state,  # type: ignore[arg-type]
                created_at=k.created_at,
                retire_at=k.retire_at,
            )
            for k in await keyring().keys()
        ]

    @r.post("/api/auth/keys/rotate", response_model=RotateOut)
    async def rotate_keys(request: Request, principal: AuthenticatedPrincipal) -> RotateOut:
        """A new signing key: new tokens use it; the previous stays in the JWKS until
        its tokens have expired; older keys are retired."""
        await require_admin(request, principal, "rotate signing keys")
        kid, previous = await keyring().rotate()
        async with ctx.db.session() as s, s.begin():
            await accounts.audit(
                s,
                "key_rotated",
                actor=principal.subject,
                subject=kid,
                ip=client_ip(request),
                previous=previous,
            )
        return RotateOut(kid=kid, previous=previous)

    @r.get("/api/auth/audit", response_model=list[AuditOut])
    async def audit_log(
        request: Request,
        principal: AuthenticatedPrincipal,
        action: str = "",
        subject: str = "",
        actor: str = "",
        before: int | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AuditOut]:
        """Newest first; page with ``before`` = the smallest id seen."""
        await require_admin(request, principal, "read the audit log")
        stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if action:
            stmt = stmt.where(AuditEntry.action == action)
        if subject:
            stmt = stmt.where(AuditEntry.subject == subject)
        if actor:
            stmt = stmt.where(AuditEntry.actor == actor)
        if before is not None:
            stmt = stmt.where(AuditEntry.id < before)
        async with ctx.db.session() as s:
            return [
                AuditOut(
                    id=e.id,
                    at=e.at,
                    action=e.action,
                    actor=e.actor,
                    subject=e.subject,
                    ip=e.ip,
                    detail=e.detail,
                )
                for e in await s.scalars(stmt)
            ]

    return r
