"""NBIA download endpoints: getImage, getImageWithMD5Hash and getSingleImage (v4)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from contextlib import aclosing
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from services.common.security import AuthenticatedPrincipal, CurrentPrincipal, Principal, forbid
from services.common.service import ServiceContext
from services.download import handlers
from services.download.domain import (
    access_denied,
    default_file_names,
    is_yes,
    licence_text,
    missing_parameter,
    new_file_names,
    unknown_parameter,
)
from services.download.handlers import Readable
from services.download.schemas import DownloadOut
from services.download.streaming import (
    Progress,
    hold_last,
    in_thread,
    series_zip,
    verified_chunks,
)

log = logging.getLogger("imarc.download")
NBIA_V4 = "/nbia-api/services/v4"
SERIES = "SeriesInstanceUID"
SOP = "SOPInstanceUID"


def _bad_request(message: str) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=400)


def _params(request: Request, allowed: Sequence[str], required: Sequence[str]) -> dict[str, str]:
    """The query parameters, or ValueError with NBIA's message for an unknown or missing
    one (v4 rejects parameters it does not know)."""
    params = dict(request.query_params)
    for name in params:
        if name not in allowed:
            raise ValueError(unknown_parameter(name, allowed))
    for name in required:
        if not params.get(name, "").strip():
            raise ValueError(missing_parameter(name))
    return {k: v.strip() for k, v in params.items()}


def router(ctx: ServiceContext) -> APIRouter:
    r = APIRouter(tags=["download (NBIA)"])
    background: set[asyncio.Task[None]] = set()

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        # A cancelled stream (client gone) cannot await; its log entry is written apart.
        task = asyncio.ensure_future(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    def stream(
        source: Iterator[bytes],
        principal: Principal,
        series: Readable,
        progress: Progress,
        kind: str,
        sop_instance_uid: str | None = None,
    ) -> AsyncIterator[bytes]:
        async def body() -> AsyncIterator[bytes]:
            def record(complete: bool) -> Coroutine[Any, Any, None]:
                return handlers.record_download(
                    ctx,
                    principal,
                    series,
                    kind=kind,
                    dicom_bytes=progress.dicom_bytes,
                    complete=complete,
                    sop_instance_uid=sop_instance_uid,
                )

            try:
                async with aclosing(in_thread(source)) as blocks:
                    async for block in blocks:
                        yield block
            except BaseException:
                log.warning(
                    "download of series %s by %s ended early after %d bytes",
                    series.series_instance_uid,
                    principal.subject,
                    progress.dicom_bytes,
                )
                spawn(record(False))
                raise
            await record(True)

        return body()

    async def zip_response(
        request: Request,
        principal: Principal,
        *,
        allowed: Sequence[str],
        with_licence: bool,
        md5: bool | None = None,
    ) -> Response:
        try:
            params = _params(request, allowed, (SERIES,))
        except ValueError as e:
            return _bad_request(str(e))
        uid = params[SERIES]
        series = await handlers.readable_series(ctx, principal, uid)
        if series is None:
            return _bad_request(access_denied(uid))
        include_md5 = is_yes(params.get("IncludeMD5")) if md5 is None else md5
        names = (
            new_file_names(series.images)
            if is_yes(params.get("NewFileNames"))
            else default_file_names(len(series.images))
        )
        licence = (
            licence_text(series.collection, series.licence_name, series.licence_url)
            if with_licence
            else None
        )
        progress = Progress()
        zs = series_zip(
            ctx.store, series.images, names, progress, licence=licence, include_md5=include_md5
        )
        # NBIA sends no Content-Length; sending the exact one lets clients show progress,
        # tells them when a stream was cut short, and spares the chunked-encoding copy.
        return StreamingResponse(
            stream(iter(zs), principal, series, progress, "zip"),
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="{uid}.zip"',
                "Content-Length": str(len(zs)),
            },
        )

    @r.get(f"{NBIA_V4}/getImage")
    async def get_image(request: Request, principal: CurrentPrincipal) -> Response:
        """A zip of the series streamed from the public zone: LICENSE, the images
        (``NewFileNames=Yes`` for ``{acq}-{inst}.dcm``), ``md5hashes.csv`` with
        ``IncludeMD5=Yes``."""
        return await zip_response(
            request, principal, allowed=(SERIES, "NewFileNames", "IncludeMD5"), with_licence=True
        )

    @r.get(f"{NBIA_V4}/getImageWithMD5Hash")
    async def get_image_with_md5(request: Request, principal: CurrentPrincipal) -> Response:
        """As getImage with ``IncludeMD5=Yes``, without the LICENSE entry (as NBIA v4)."""
        return await zip_response(
            request, principal, allowed=(SERIES,), with_licence=False, md5=True
        )

    @r.get(f"{NBIA_V4}/getSingleImage")
    async def get_single_image(request: Request, principal: CurrentPrincipal) -> Response:
        """One DICOM instance of a series, as published."""
        try:
            params = _params(request, (SERIES, SOP), (SERIES, SOP))
        except ValueError as e:
            return _bad_request(str(e))
        uid, sop = params[SERIES], params[SOP]
        series = await handlers.readable_series(ctx, principal, uid, sop)
        if series is None:
            return _bad_request(access_denied(uid))
        image = series.images[0]
        progress = Progress()
        return StreamingResponse(
            stream(
                hold_last(verified_chunks(ctx.store, image, progress)),
                principal,
                series,
                progress,
                "single",
                sop,
            ),
            media_type="application/dicom",
            headers={
                "Content-Disposition": f"attachment; filename={sop}.dcm",
                "Content-Length": str(image.size),
            },
        )

    @r.get("/api/download/collections/{collection}/downloads", response_model=list[DownloadOut])
    async def downloads(
        collection: str,
        principal: AuthenticatedPrincipal,
        limit: int = Query(100, ge=1, le=10_000),
    ) -> list[DownloadOut]:
        """The latest downloads of a collection's series (its managers and admins)."""
        if not principal.can_manage(collection):
            raise forbid(f"see who downloaded collection {collection}")
        rows = await handlers.recent_downloads(ctx, collection, limit)
        return [DownloadOut.model_validate(d) for d in rows]

    return r
