"""The gateway: one origin for clients in distributed mode, routing by path.

The routes are the ones the Helm chart exposes:
``/nbia-api/services/v4|v1/...`` (search → catalog, image downloads → download),
``/nbia-api/oauth/token`` and ``/nbia-api/logout`` → auth, ``/api/<service>/...`` → that service.
Bodies stream through in both directions; nothing is buffered or re-encoded. An upstream
that cannot be reached answers 503, one that fails before answering 502, both with
``Retry-After``; one that dies mid-answer cuts the client's connection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.background import BackgroundTask

from services.common.app import create_app
from services.common.contracts import service_for_path
from services.common.settings import SERVICES, Settings

log = logging.getLogger("imarc.gateway")
#: Seconds a client should wait before retrying a request an upstream failed.
RETRY_AFTER = 2
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


class UpstreamCut(Exception):
    """An upstream died after its status was sent: the response is aborted."""


def gateway_app(settings: Settings) -> FastAPI:
    client: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        client["http"] = httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, read=600.0), limits=httpx.Limits(max_connections=200)
        )
        try:
            yield
        finally:
            await client["http"].aclose()

    async def probe_all() -> None:
        for name in SERVICES:
            resp = await client["http"].get(settings.service_url(name).rstrip("/") + "/readyz")
            if resp.status_code != 200:
                raise ConnectionError(f"{name} is not ready")

    app = create_app(
        "imarc gateway",
        lifespan=lifespan,
        probes=lambda: [("services", probe_all)],
        service="gateway",
    )

    @app.api_route(
        "/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        include_in_schema=False,
    )
    async def proxy(path: str, request: Request) -> Any:
        service = service_for_path("/" + path)
        if service is None:
            return PlainTextResponse(
                f"no such endpoint: /{path}. The API lives under /nbia-api/services/v4/ and "
                "/api/<service>/",
                status_code=404,
            )
        url = settings.service_url(service).rstrip("/") + "/" + path
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        headers.append(("x-forwarded-for", request.client.host if request.client else ""))
        upstream = client["http"].build_request(
            request.method,
            url,
            params=request.query_params,
            headers=headers,
            content=request.stream(),
        )
        try:
            resp = await client["http"].send(upstream, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            return unavailable(503, f"the {service} service is not reachable; try again shortly")
        except httpx.TransportError as e:
            log.warning("%s failed before answering %s: %r", service, request.method, e)
            return unavailable(
                502,
                f"the {service} service failed before answering (it may have restarted); "
                "try again shortly",
            )
        out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(
            relay(resp, service),
            status_code=resp.status_code,
            headers=out_headers,
            background=BackgroundTask(resp.aclose),
        )

    return app


def unavailable(status: int, message: str) -> JSONResponse:
    """An upstream failure the client may retry: 502 or 503 with ``Retry-After``."""
    return JSONResponse(
        {"detail": message}, status_code=status, headers={"Retry-After": str(RETRY_AFTER)}
    )


async def relay(resp: httpx.Response, service: str) -> AsyncIterator[bytes]:
    """The upstream body as it comes. If the upstream dies once the status was sent, the
    client's connection is cut rather than the body ended cleanly, so a truncated download
    never looks complete."""
    try:
        async for chunk in resp.aiter_raw():
            yield chunk
    except httpx.TransportError as e:
        log.warning("%s failed in the middle of its answer; cutting the response: %r", service, e)
        raise UpstreamCut(f"{service} failed in the middle of its answer") from None
