"""The dependencies auth's routes name: the service's ``Auth``, and the ``Caller`` (who
asks, from which address) that use cases audit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.auth.bootstrap import Auth
from services.auth.service.audit import Caller
from services.common.app import provided
from services.common.proxies import request_address
from services.common.security import AuthenticatedPrincipal, CurrentPrincipal

AuthDep = Annotated[Auth, Depends(provided(Auth))]


def client_ip(request: Request, auth: AuthDep) -> str:
    """The caller's address: the socket's peer, or what a trusted proxy (the gateway, the
    ingress; ``IMARC_TRUSTED_PROXIES``) says it forwarded for. A client's own
    X-Forwarded-For is never believed: the per-address login limit counts real peers."""
    return request_address(request, auth.settings.trusted_proxies)


ClientIp = Annotated[str, Depends(client_ip)]


def _caller(request: Request, principal: AuthenticatedPrincipal, ip: ClientIp) -> Caller:
    return Caller(principal, ip, request.method, request.url.path)


def _anyone(request: Request, principal: CurrentPrincipal, ip: ClientIp) -> Caller:
    return Caller(principal, ip, request.method, request.url.path)


#: a logged-in caller (401 without a valid token)
CallerDep = Annotated[Caller, Depends(_caller)]
#: any caller, anonymous included
AnyCallerDep = Annotated[Caller, Depends(_anyone)]
