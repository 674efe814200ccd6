"""The dependencies auth's routes name: the service's ``Auth``, and the ``Caller`` (who
asks, from which address) that use cases audit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.auth.bootstrap import Auth
from services.auth.service.audit import Caller
from services.common.app import provided
from services.common.security import AuthenticatedPrincipal, CurrentPrincipal

AuthDep = Annotated[Auth, Depends(provided(Auth))]


def client_ip(request: Request) -> str:
    """The caller's address: the entry our own proxy (the gateway) appended to
    X-Forwarded-For, else the peer. Earlier entries are client-supplied and untrusted."""
    # The gateway adds its own header line after any the client sent: read the last.
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    if forwarded.strip(", "):
        return forwarded.rstrip(", ").split(",")[-1].strip()[:64]
    return request.client.host if request.client else ""


def _caller(request: Request, principal: AuthenticatedPrincipal) -> Caller:
    return Caller(principal, client_ip(request), request.method, request.url.path)


def _anyone(request: Request, principal: CurrentPrincipal) -> Caller:
    return Caller(principal, client_ip(request), request.method, request.url.path)


ClientIp = Annotated[str, Depends(client_ip)]
#: a logged-in caller (401 without a valid token)
CallerDep = Annotated[Caller, Depends(_caller)]
#: any caller, anonymous included
AnyCallerDep = Annotated[Caller, Depends(_anyone)]
