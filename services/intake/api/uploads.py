"""Submission bodies as files: one DICOM file, multipart/form-data parts named ``file``,
or a zip of folders of files — each read under the limits of services/common/bounds.py,
refused with 413 once the body, or one file of it, passes its limit."""

from __future__ import annotations

import asyncio
import functools
import zipfile
from contextlib import AsyncExitStack
from email.message import Message
from typing import Any, BinaryIO
from urllib.parse import unquote

from fastapi import Request
from starlette.datastructures import UploadFile

from services.common import bounds
from services.common.app import DomainError
from services.common.bounds import LimitExceeded, Limits
from services.intake import domain
from services.intake.service.receiving import Upload, UploadUnreadable

MAX_FILES = 100_000
ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed", "application/x-zip"})
FILE_TYPES = frozenset({"application/dicom", "application/octet-stream"})
DEFAULT_FILENAME = "upload.dcm"

SUBMIT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "One DICOM file (application/dicom; name in X-Filename or Content-Disposition), "
            "several as multipart/form-data parts named `file`, or a zip of folders of files "
            "(application/zip)."
        ),
        "content": {
            "application/dicom": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                }
            },
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


class TooLarge(DomainError):
    status = 413


class UnsupportedType(DomainError):
    status = 415


async def uploads(request: Request, stack: AsyncExitStack, limits: Limits) -> list[Upload]:
    """The files of a submission body, read under ``limits`` (services/common/bounds.py):
    refused with 413 once the body, or one file of it, passes its limit."""
    try:
        return await _bounded_uploads(request, stack, limits)
    except LimitExceeded as e:
        raise TooLarge(str(e)) from None


async def _bounded_uploads(request: Request, stack: AsyncExitStack, limits: Limits) -> list[Upload]:
    ctype = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await bounds.parse_form(
            bounds.capped(request, limits.request_bytes), limits, MAX_FILES
        )
        stack.push_async_callback(form.close)
        parts = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
        if not parts:
            raise DomainError(
                "the form has no part named `file`; send each DICOM file as a `file` part"
            )
        return [_file_upload(_clip(p.filename or DEFAULT_FILENAME), p, limits) for p in parts]
    if ctype in ZIP_TYPES:
        body = await bounds.spool(bounds.capped(request, limits.request_bytes), stack)
        archive = await asyncio.to_thread(_open_zip, body.file)
        stack.callback(archive.close)
        entries = [
            i for i in archive.infolist() if not domain.skip_zip_entry(i.filename, i.is_dir())
        ]
        if not entries:
            raise DomainError("the zip holds no files; zip the folder of DICOM files")
        if len(entries) > MAX_FILES:
            raise TooLarge(f"the zip holds {len(entries)} files, more than {MAX_FILES}; split it")
        bounds.check_zip(entries, limits)
        return [
            Upload(
                _clip(i.filename),
                functools.partial(_read_entry, archive, i, limits),
                size=min(i.file_size, limits.file_bytes),
            )
            for i in entries
        ]
    if ctype in FILE_TYPES or not ctype:
        # one file: the per-file limit bounds the body as it streams
        limit = min(limits.request_bytes, limits.file_bytes)
        refusal = (
            bounds.file_too_large(limit, "the file")
            if limits.file_bytes < limits.request_bytes
            else bounds.request_too_large(limit)
        )
        body = await bounds.spool(bounds.capped(request, limit, refusal), stack)
        if not body.size:
            raise DomainError("the request body is empty; send the DICOM file as the body")
        return [_file_upload(_filename(request), body, limits)]
    raise UnsupportedType(
        f"cannot take {ctype} here; send application/dicom, multipart/form-data or application/zip"
    )


def _file_upload(name: str, f: UploadFile, limits: Limits) -> Upload:
    return Upload(name, functools.partial(bounds.read_file, f.file, limits), size=f.size or 0)


def _open_zip(f: BinaryIO) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise DomainError(
            f"the body is not a readable zip file ({e}); send a .zip archive, "
            "or the DICOM files themselves"
        ) from None


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits) -> bytes:
    try:
        return bounds.read_zip_member(archive, info, limits)
    except ValueError as e:
        raise UploadUnreadable(str(e)) from None


def _filename(request: Request) -> str:
    name = request.headers.get("x-filename")
    if name:
        return _clip(unquote(name))
    disposition = request.headers.get("content-disposition")
    if disposition:
        m = Message()
        m["content-disposition"] = disposition
        if found := m.get_filename():
            return _clip(found)
    return DEFAULT_FILENAME


def _clip(name: str) -> str:
    return name[:1024] or DEFAULT_FILENAME
