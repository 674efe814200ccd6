"""NBIA download endpoints: getImage, getImageWithMD5Hash and getSingleImage (v4)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from services.common.security import CurrentPrincipal, Principal
from services.download import queries
from services.download.api.deps import DownloadDep
from services.download.bootstrap import Download
from services.download.domain import (
    access_denied,
    default_file_names,
    is_yes,
    missing_parameter,
    new_file_names,
    notices,
    unknown_parameter,
)
from services.download.ranges import ByteRange, Unsatisfiable, requested_range
from services.download.service import send, series_layout
from services.download.streaming import (
    Progress,
    hold_last,
    object_span,
    series_zip,
    verified_chunks,
    zip_bytes,
)

NBIA_V4 = "/nbia-api/services/v4"
SERIES = "SeriesInstanceUID"
SOP = "SOPInstanceUID"

router = APIRouter(prefix=NBIA_V4, tags=["download (NBIA)"])


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


def _conditional(request: Request, size: int, tag: str) -> tuple[ByteRange | None, Response | None]:
    """The range a request asks for, or the answer it gets at once (304, 416)."""
    if request.headers.get("if-none-match", "").strip() == tag:
        return None, Response(status_code=304, headers={"ETag": tag})
    try:
        rng = requested_range(
            request.headers.get("range"),
            size,
            if_range=request.headers.get("if-range"),
            etag=tag,
        )
    except Unsatisfiable as e:
        return None, PlainTextResponse(
            f"{e}; ask for a range that starts before byte {size}",
            status_code=416,
            headers={"Content-Range": e.content_range},
        )
    return rng, None


def _partial(
    body: AsyncIterator[bytes], rng: ByteRange | None, size: int, headers: dict[str, str], **kw: Any
) -> StreamingResponse:
    headers = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(size)}
    if rng is None:
        return StreamingResponse(body, headers=headers, **kw)
    headers.update({"Content-Range": rng.content_range, "Content-Length": str(rng.length)})
    return StreamingResponse(body, status_code=206, headers=headers, **kw)


async def _zip(
    request: Request,
    download: Download,
    principal: Principal,
    *,
    allowed: Sequence[str],
    md5: bool | None = None,
) -> Response:
    try:
        params = _params(request, allowed, (SERIES,))
    except ValueError as e:
        return _bad_request(str(e))
    uid = params[SERIES]
    series = await queries.readable_series(download.db, principal, uid)
    if series is None:
        return _bad_request(access_denied(uid))
    include_md5 = is_yes(params.get("IncludeMD5")) if md5 is None else md5
    names = (
        new_file_names(series.images)
        if is_yes(params.get("NewFileNames"))
        else default_file_names(len(series.images))
    )
    notes = notices(series.terms)
    headers = {"Content-Disposition": f'attachment; filename="{uid}.zip"'}
    progress = Progress()
    if include_md5 or any(i.crc32 is None for i in series.images):
        # md5hashes.csv is known only once every image has been read, and an object
        # recorded without its CRC-32 has a header that is too: streamed, not laid out
        zs = series_zip(
            download.store, series.images, names, progress, notices=notes, include_md5=include_md5
        )
        # NBIA sends no Content-Length; sending the exact one lets clients show progress,
        # tells them when a stream was cut short, and spares the chunked-encoding copy.
        return StreamingResponse(
            send(download, iter(zs), principal, series, progress, length=len(zs), kind="zip"),
            media_type="application/octet-stream",
            headers={**headers, "Content-Length": str(len(zs)), "Accept-Ranges": "none"},
        )
    layout, tag = series_layout(series, names, notes)
    rng, answer = _conditional(request, layout.size, tag)
    if answer is not None:
        return answer
    start, end = (0, layout.size) if rng is None else (rng.start, rng.end)
    chunks = zip_bytes(download.store, layout, progress, start, end)
    return _partial(
        send(download, chunks, principal, series, progress, length=end - start, kind="zip"),
        rng,
        layout.size,
        {**headers, "ETag": tag},
        media_type="application/octet-stream",
    )


@router.get("/getImage")
async def get_image(
    request: Request, download: DownloadDep, principal: CurrentPrincipal
) -> Response:
    """A zip of the series streamed from the public zone: LICENSE, CITATION, the images
    (``NewFileNames=Yes`` for ``{acq}-{inst}.dcm``), ``md5hashes.csv`` with
    ``IncludeMD5=Yes``."""
    return await _zip(
        request,
        download,
        principal,
        allowed=(SERIES, "NewFileNames", "IncludeMD5"),
    )


@router.get("/getImageWithMD5Hash")
async def get_image_with_md5(
    request: Request, download: DownloadDep, principal: CurrentPrincipal
) -> Response:
    """As getImage with ``IncludeMD5=Yes``. NBIA v4 leaves LICENSE out here; every zip
    of ours carries the collection's licence and citation."""
    return await _zip(request, download, principal, allowed=(SERIES,), md5=True)


@router.get("/getSingleImage")
async def get_single_image(
    request: Request, download: DownloadDep, principal: CurrentPrincipal
) -> Response:
    """One DICOM instance of a series, as published."""
    try:
        params = _params(request, (SERIES, SOP), (SERIES, SOP))
    except ValueError as e:
        return _bad_request(str(e))
    uid, sop = params[SERIES], params[SOP]
    series = await queries.readable_series(download.db, principal, uid, sop)
    if series is None:
        return _bad_request(access_denied(uid))
    image = series.images[0]
    tag = f'"{image.sha256}"'
    rng, answer = _conditional(request, image.size, tag)
    if answer is not None:
        return answer
    progress = Progress()
    chunks = (
        hold_last(verified_chunks(download.store, image, progress))
        if rng is None
        else object_span(download.store, image, rng.start, rng.length, progress)
    )
    length = image.size if rng is None else rng.length
    return _partial(
        send(
            download,
            chunks,
            principal,
            series,
            progress,
            length=length,
            kind="single",
            sop_instance_uid=sop,
        ),
        rng,
        image.size,
        {"Content-Disposition": f"attachment; filename={sop}.dcm", "ETag": tag},
        media_type="application/dicom",
    )
