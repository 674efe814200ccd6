"""OAuth2 tokens (RFC 6749, NBIA-compatible), logout, revocation (RFC 7009), the
revocation list the other services follow, and the JWKS."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from services.auth.api.deps import AuthDep, ClientIp
from services.auth.schemas import Revoked
from services.auth.service import oauth
from services.auth.service.oauth import NO_STORE, OAuthError, TokenRequest
from services.common.security import bearer

router = APIRouter(tags=["auth"])
LOGGED_OUT = "You Have Logged Out successfully."


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


async def token(
    request: Request,
    auth: AuthDep,
    ip: ClientIp,
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
        issued = await oauth.token(auth, req, ip)
    except OAuthError as e:
        return JSONResponse(
            {"error": e.error, "error_description": e.description},
            status_code=e.status,
            headers=e.headers(),
        )
    return JSONResponse(issued.reply(), headers=NO_STORE)


router.add_api_route("/nbia-api/oauth/token", token, methods=["POST"], summary="Token (NBIA)")
router.add_api_route("/api/auth/token", token, methods=["POST"], summary="Token")


@router.post("/api/auth/logout")
async def logout(request: Request, auth: AuthDep, ip: ClientIp) -> dict[str, bool]:
    """End the session of the bearer token: it and its refresh tokens stop working."""
    await oauth.logout(auth, bearer(request), ip, required=True)
    return {"logged_out": True}


@router.get("/nbia-api/logout", response_class=PlainTextResponse)
async def nbia_logout(request: Request, auth: AuthDep, ip: ClientIp) -> str:
    await oauth.logout(auth, bearer(request), ip, required=False)
    return LOGGED_OUT


@router.post("/api/auth/revoke", response_model=Revoked)
async def revoke(
    auth: AuthDep, ip: ClientIp, response: Response, token: Annotated[str, Form()] = ""
) -> Revoked:
    """RFC 7009 token revocation: a refresh token ends its session; an access token
    stops working. Always 200 with an empty JSON object, as the RFC asks, even for an
    unknown token."""
    if token.strip():
        await oauth.revoke(auth, token.strip(), ip)
    response.headers.update(NO_STORE)
    return Revoked()


@router.get("/api/auth/revocations")
async def revocation_list(auth: AuthDep) -> JSONResponse:
    """Revoked tokens and sessions, for the other services' token checks (they poll
    it every few seconds); opaque ids and hashed account names only."""
    return JSONResponse(await auth.revocations.listing(), headers=NO_STORE)


@router.get("/api/auth/.well-known/jwks.json")
async def jwks(auth: AuthDep) -> JSONResponse:
    await auth.keyring.refresh()
    return JSONResponse(auth.keyring.jwks(), headers={"Cache-Control": "max-age=60"})
