"""The FastAPI app shell every process shares: health, readiness, request metrics, errors.

The metrics themselves are not served here: see ``metrics.start_metrics_server``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from services.common.metrics import HttpMetrics

log = logging.getLogger("imarc.app")
Probe = Callable[[], Awaitable[None]]
D = TypeVar("D")


class DomainError(Exception):
    """A rule of a service that a request broke. Services subclass it per kind (not found,
    not allowed, conflict, …) with the HTTP ``status`` it maps to; the app shell turns every
    one into ``{"detail": <the message>}`` with that status — the one mapping from domain
    errors to HTTP. The message is a sentence saying what is wrong and what to do."""

    status = 400
    headers: dict[str, str] | None = None


class NotFound(DomainError):
    status = 404


class Forbidden(DomainError):
    status = 403


class Conflict(DomainError):
    status = 409


class Unavailable(DomainError):
    status = 503


def provide(app: FastAPI, deps: object) -> None:
    """Make a service's dependencies object available to its routes (see :func:`provided`)."""
    if not hasattr(app.state, "deps"):
        app.state.deps = {}
    app.state.deps[type(deps)] = deps


def provided(cls: type[D]) -> Callable[[Request], D]:
    """A FastAPI dependency giving the routes the ``cls`` object the runtime built, so a
    service names it once: ``IntakeDep = Annotated[Intake, Depends(provided(Intake))]``."""

    def get(request: Request) -> D:
        deps: D | None = getattr(request.app.state, "deps", {}).get(cls)
        if deps is None:
            raise RuntimeError(f"{cls.__name__} is not wired into this app")
        return deps

    get.__name__ = f"provided_{cls.__name__}"
    return get


#: The body of every 422 (see ``bad_request``): one sentence, like every other error.
VALIDATION_ERROR: dict[str, Any] = {
    "title": "HTTPValidationError",
    "type": "object",
    "properties": {
        "detail": {
            "type": "string",
            "title": "Detail",
            "description": "what in the request is invalid, parameter by parameter",
        }
    },
    "required": ["detail"],
}


def create_app(
    title: str,
    *,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]] | None = None,
    probes: Callable[[], Sequence[tuple[str, Probe]]] = lambda: (),
    service: str | None = None,
) -> FastAPI:
    app = FastAPI(title=title, lifespan=lifespan)
    app.add_middleware(HttpMetrics, service=service)
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        schema = default_openapi()
        found = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in found:  # what bad_request below answers
            found["HTTPValidationError"] = VALIDATION_ERROR
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        failed: dict[str, str] = {}
        for name, probe in probes():
            try:
                await probe()
            except Exception as e:
                failed[name] = str(e) or type(e).__name__
        if failed:
            return JSONResponse({"ready": False, "failed": failed}, status_code=503)
        return JSONResponse({"ready": True})

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse({"detail": f"invalid request: {problems}"}, status_code=422)

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> PlainTextResponse:
        log.exception("unhandled error", exc_info=exc)
        return PlainTextResponse("Server was not able to process your request", status_code=500)

    return app
