"""The curator's web page under ``/curate/``: plain HTML, CSS and one JavaScript module
checked into services/qc/web (no build step), served from the same origin as the API."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from services.qc.domain import NotFound

router = APIRouter(tags=["curation page"], include_in_schema=False)
FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
# the page loads only its own files and talks only to its own origin
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@cache
def _file(name: str) -> bytes:
    return resources.files("services.qc").joinpath("web", name).read_bytes()


def _serve(name: str) -> Response:
    if name not in FILES:
        raise NotFound(f"no such file on the curation page: {name}")
    return Response(_file(name), media_type=FILES[name], headers=HEADERS)


@router.get("/curate")
async def to_page() -> RedirectResponse:
    return RedirectResponse("/curate/")


@router.get("/curate/")
async def page() -> Response:
    return _serve("index.html")


@router.get("/curate/static/{name}")
async def static(name: str) -> Response:
    return _serve(name)
