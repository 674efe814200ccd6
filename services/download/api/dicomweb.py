"""WADO-RS under /dicomweb (PS3.18 §10.4): studies, series and instances as
multipart/related application/dicom, their metadata as application/dicom+json, and the
frames and bulk data of native pixel data. The same access rules as the NBIA API: a
study shows only the series the caller may read; nothing readable is a 404."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Sequence

import pydicom
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from services.common.app import DomainError, NotFound
from services.common.security import CurrentPrincipal, Principal
from services.download import dicomweb, queries
from services.download.api.deps import DownloadDep
from services.download.bootstrap import Download
from services.download.queries import Readable
from services.download.service import send
from services.download.streaming import Progress, verified_chunks

router = APIRouter(prefix="/dicomweb", tags=["DICOMweb (WADO-RS)"])
STUDY = "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{sop}"


class NotAcceptable(DomainError):
    status = 406


async def _found(
    download: Download,
    principal: Principal,
    study: str,
    series: str | None = None,
    sop: str | None = None,
) -> list[Readable]:
    found = await queries.readable_in_study(download.db, principal, study, series, sop)
    if not found:
        what = "instance" if sop else "series" if series else "study"
        raise NotFound(
            f"no {what} with that UID is available to you; check the UIDs, or log in with "
            "an account that may read it"
        )
    return found


def _instances(
    download: Download, principal: Principal, found: list[Readable], kind: str
) -> StreamingResponse:
    mark = dicomweb.boundary()
    head, tail = dicomweb.part_head(mark, dicomweb.DICOM), dicomweb.part_tail()
    end = dicomweb.closing(mark)

    def parts(series: Readable, progress: Progress) -> Iterator[bytes]:
        for image in series.images:
            yield head
            yield from verified_chunks(download.store, image, progress)
            yield tail

    lengths = [sum(len(head) + i.size + len(tail) for i in s.images) for s in found]

    async def body() -> AsyncIterator[bytes]:
        for series, length in zip(found, lengths, strict=True):
            progress = Progress()
            source = parts(series, progress)
            async for block in send(
                download, source, principal, series, progress, length=length, kind=kind
            ):
                yield block
        yield end

    return StreamingResponse(
        body(),
        media_type=dicomweb.content_type(dicomweb.DICOM, mark),
        headers={"Content-Length": str(sum(lengths) + len(end))},
    )


@router.get(STUDY)
async def study(
    study: str, download: DownloadDep, principal: CurrentPrincipal
) -> StreamingResponse:
    return _instances(download, principal, await _found(download, principal, study), "wado")


@router.get(SERIES)
async def series(
    study: str, series: str, download: DownloadDep, principal: CurrentPrincipal
) -> StreamingResponse:
    found = await _found(download, principal, study, series)
    return _instances(download, principal, found, "wado")


@router.get(INSTANCE)
async def instance(
    study: str, series: str, sop: str, download: DownloadDep, principal: CurrentPrincipal
) -> StreamingResponse:
    found = await _found(download, principal, study, series, sop)
    return _instances(download, principal, found, "wado")


async def _read(download: Download, key: str, *, pixels: bool) -> pydicom.Dataset:
    def read() -> pydicom.Dataset:
        handle = download.store.open_sync("public", key)
        try:
            return pydicom.dcmread(handle, stop_before_pixels=not pixels)
        finally:
            handle.close()

    return await asyncio.to_thread(read)


async def _metadata(request: Request, download: Download, found: list[Readable]) -> Response:
    # dicomweb-client sends a Host header without the port: a configured public URL wins
    base = (download.public_url or str(request.base_url)).rstrip("/") + "/dicomweb"
    out = []
    for s in found:
        ds_study = None
        for image in s.images:
            ds = await _read(download, image.key, pixels=False)
            ds_study = ds_study or str(ds.StudyInstanceUID)
            uri = (
                f"{base}/studies/{ds_study}/series/{s.series_instance_uid}/instances/"
                f"{image.sop_instance_uid}/bulkdata/{dicomweb.PIXEL_DATA}"
            )
            out.append(dicomweb.metadata(ds, uri))
    return Response(json.dumps(out), media_type=dicomweb.DICOM_JSON)


@router.get(STUDY + "/metadata")
async def study_metadata(
    study: str, request: Request, download: DownloadDep, principal: CurrentPrincipal
) -> Response:
    return await _metadata(request, download, await _found(download, principal, study))


@router.get(SERIES + "/metadata")
async def series_metadata(
    study: str, series: str, request: Request, download: DownloadDep, principal: CurrentPrincipal
) -> Response:
    found = await _found(download, principal, study, series)
    return await _metadata(request, download, found)


@router.get(INSTANCE + "/metadata")
async def instance_metadata(
    study: str,
    series: str,
    sop: str,
    request: Request,
    download: DownloadDep,
    principal: CurrentPrincipal,
) -> Response:
    found = await _found(download, principal, study, series, sop)
    return await _metadata(request, download, found)


def _octets(parts: Sequence[bytes]) -> Response:
    mark = dicomweb.boundary()
    body = b"".join(dicomweb.multipart(parts, dicomweb.OCTETS, mark))
    return Response(body, media_type=dicomweb.content_type(dicomweb.OCTETS, mark))


async def _pixels(download: Download, found: list[Readable]) -> pydicom.Dataset:
    return await _read(download, found[0].images[0].key, pixels=True)


@router.get(INSTANCE + "/frames/{frames}")
async def frames(
    study: str,
    series: str,
    sop: str,
    frames: str,
    download: DownloadDep,
    principal: CurrentPrincipal,
) -> Response:
    """Frames of native pixel data, one part each (application/octet-stream)."""
    try:
        numbers = dicomweb.frame_numbers(frames)
    except ValueError as e:
        raise DomainError(str(e)) from e
    ds = await _pixels(download, await _found(download, principal, study, series, sop))
    try:
        return _octets(dicomweb.frames(ds, numbers))
    except dicomweb.NotNative as e:
        raise NotAcceptable(str(e)) from e
    except IndexError as e:
        raise NotFound(str(e)) from e


@router.get(INSTANCE + "/bulkdata/{tag}")
async def bulkdata(
    study: str,
    series: str,
    sop: str,
    tag: str,
    download: DownloadDep,
    principal: CurrentPrincipal,
) -> Response:
    """The pixel data of an instance (the BulkDataURI its metadata gives)."""
    if tag.upper() != dicomweb.PIXEL_DATA:
        raise NotFound(f"no bulk data {tag}: only the pixel data ({dicomweb.PIXEL_DATA}) is")
    ds = await _pixels(download, await _found(download, principal, study, series, sop))
    try:
        return _octets([dicomweb.pixel_data(ds)])
    except dicomweb.NotNative as e:
        raise NotAcceptable(str(e)) from e
