"""HTTP routes of the intake service (``/api/intake``)."""

from __future__ import annotations

import asyncio
import functools
import zipfile
from contextlib import AsyncExitStack
from email.message import Message
from typing import Annotated, Any, BinaryIO
from urllib.parse import unquote

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from services.common import bounds
from services.common.bounds import LimitExceeded, Limits
from services.common.contracts import MAX_OFFSET
from services.common.events import Licence
from services.common.security import AuthenticatedPrincipal, Principal, forbid
from services.common.service import ServiceContext
from services.intake import domain, handlers
from services.intake.handlers import Upload, UploadUnreadable
from services.intake.models import Collection
from services.intake.schemas import (
    AcceptedFile,
    CollectionCreate,
    CollectionOut,
    CollectionPatch,
    CountsOut,
    HeldFile,
    HeldInstanceOut,
    SubmissionOut,
)
from services.intake.service import submissions

MAX_FILES = 100_000
ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed", "application/x-zip"})
FILE_TYPES = frozenset({"application/dicom", "application/octet-stream"})
DEFAULT_FILENAME = "upload.dcm"
REPLICA = "this site is a read replica; send submissions to the primary site"
MIRROR = "this site is a mirror of another site; send submissions to the site it mirrors"

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


def may_see(principal: Principal, c: Collection) -> bool:
    """A limited collection's record (name, licence, description) is shown only to those
    who may read it or submit to it."""
    return principal.can_read(c.name, c.access, c.licence_id) or principal.can_submit(c.name)


def no_collection(name: str) -> HTTPException:
    return HTTPException(
        404,
        f"no collection named {name}; create it with "
        f"`imarc collections create {name} --licence ID`",
    )


async def _licence(session: AsyncSession, licence_id: str) -> Licence:
    try:
        return await handlers.resolve_licence(session, licence_id)
    except domain.UnknownLicence as e:
        raise HTTPException(400, str(e)) from None


def router(ctx: ServiceContext) -> APIRouter:
    r = APIRouter(prefix="/api/intake", tags=["intake"])

    async def collection_or_404(name: str) -> Collection:
        async with ctx.db.session() as s:
            c = await handlers.get_collection(s, name)
        if c is None:
            raise no_collection(name)
        return c

    @r.post("/collections", status_code=201, response_model=CollectionOut)
    async def create_collection(
        body: CollectionCreate, principal: AuthenticatedPrincipal
    ) -> CollectionOut:
        if not principal.can_manage():
            raise forbid("create collections")
        try:
            access = domain.access_with_face_policy(
                body.access, body.face_reconstructable, asked="access" in body.model_fields_set
            )
        except ValueError as e:
            raise HTTPException(409, str(e)) from None
        try:
            async with ctx.messaging.transaction() as tx:
                licence = await _licence(tx.session, body.licence)
                c = await handlers.register_collection(
                    tx,
                    ctx.source,
                    name=body.name,
                    licence=licence,
                    access=access,
                    description=body.description,
                    doi=body.doi,
                    require_id_map=body.require_id_map,
                    citation=body.citation,
                    data_usage_policy=body.data_usage_policy,
                    face_reconstructable=body.face_reconstructable,
                    by=principal.subject,
                )
        except (handlers.CollectionExists, IntegrityError):
            raise HTTPException(409, f"collection {body.name} already exists") from None
        return CollectionOut.of(c)

    @r.get("/collections", response_model=list[CollectionOut])
    async def list_collections(principal: AuthenticatedPrincipal) -> list[CollectionOut]:
        """The collections the caller may see: public ones, and limited ones they may
        read or submit to."""
        async with ctx.db.session() as s:
            rows = await s.scalars(select(Collection).order_by(Collection.name))
            return [CollectionOut.of(c) for c in rows if may_see(principal, c)]

    @r.get("/collections/{name}", response_model=CollectionOut)
    async def get_collection(name: str, principal: AuthenticatedPrincipal) -> CollectionOut:
        c = await collection_or_404(name)
        if not may_see(principal, c):
            raise no_collection(name)  # as if it did not exist: no existence oracle
        return CollectionOut.of(c)

    @r.patch("/collections/{name}", response_model=CollectionOut)
    async def patch_collection(
        name: str, body: CollectionPatch, principal: AuthenticatedPrincipal
    ) -> CollectionOut:
        await collection_or_404(name)
        if not principal.can_manage(name):
            raise forbid(f"change collection {name}")
        async with ctx.messaging.transaction() as tx:
            c = await handlers.get_collection(tx.session, name)
            if c is None:
                raise no_collection(name)
            licence = None
            if body.licence is not None:
                licence = await _licence(tx.session, body.licence)
            try:
                c = await handlers.update_collection(
                    tx,
                    ctx.source,
                    c,
                    licence=licence,
                    access=body.access,
                    description=body.description,
                    doi=body.doi,
                    require_id_map=body.require_id_map,
                    citation=body.citation,
                    data_usage_policy=body.data_usage_policy,
                    face_reconstructable=body.face_reconstructable,
                )
            except ValueError as e:  # nothing of the change is kept (the transaction rolls back)
                raise HTTPException(409, str(e)) from None
        return CollectionOut.of(c)

    @r.post(
        "/collections/{name}/instances", response_model=SubmissionOut, openapi_extra=SUBMIT_BODY
    )
    async def submit(
        name: str,
        request: Request,
        principal: AuthenticatedPrincipal,
        site: Annotated[str, Query(max_length=64, description="submitting site")] = "",
        submission: Annotated[
            str, Query(max_length=32, description="add the files to this submission")
        ] = "",
    ) -> SubmissionOut:
        """Submit DICOM files: each is accepted into quarantine or held with its reason."""
        if ctx.settings.site_role != "primary":
            raise HTTPException(503, REPLICA if ctx.settings.site_role == "replica" else MIRROR)
        await collection_or_404(name)
        if not site and len(principal.sites) == 1:
            site = next(iter(principal.sites))  # a token for one site says where files come from
        if not principal.can_submit(name, site):
            what = f"submit to collection {name}" + (f" for site {site}" if site else "")
            raise forbid(what)
        if submission:
            async with ctx.db.session() as s:
                await submissions.for_upload(s, submission, name, principal)
        async with AsyncExitStack() as stack:
            uploads = await _uploads(request, stack, Limits.of(ctx.settings))
            try:
                result = await handlers.receive(
                    ctx, name, site, principal.subject, uploads, submission or None
                )
            except handlers.StoreUnavailable:
                raise HTTPException(
                    503,
                    "the object store did not take the files; nothing was recorded, "
                    "so send the submission again",
                ) from None
        accepted: list[AcceptedFile] = []
        held: list[HeldFile] = []
        for f in result.files:
            if isinstance(f.verdict, domain.Accepted):
                accepted.append(
                    AcceptedFile(
                        filename=f.filename,
                        instance_id=f.instance_id,
                        sop_instance_uid=f.verdict.sop_instance_uid,
                    )
                )
            else:
                held.append(HeldFile(filename=f.filename, reason=f.verdict.reason))
        return SubmissionOut(
            submission_id=result.submission_id,
            collection=result.collection,
            site=result.site,
            accepted=accepted,
            held=held,
            accepted_count=len(accepted),
            held_count=len(held),
        )

    @r.get("/collections/{name}/held", response_model=list[HeldInstanceOut])
    async def held(
        name: str,
        principal: AuthenticatedPrincipal,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> list[HeldInstanceOut]:
        """Files held at intake, oldest first."""
        await collection_or_404(name)
        if not principal.can_curate(name):
            raise forbid(f"see the held files of {name}")
        async with ctx.db.session() as s:
            rows = await handlers.held_files(s, name, limit=limit, offset=offset)
        return [HeldInstanceOut.of(h) for h in rows]

    @r.get("/collections/{name}/counts", response_model=CountsOut)
    async def counts(name: str, principal: AuthenticatedPrincipal) -> CountsOut:
        await collection_or_404(name)
        if not (principal.can_curate(name) or principal.can_submit(name)):
            raise forbid(f"see the counts of {name}")
        async with ctx.db.session() as s:
            received, held = await handlers.counts(s, name)
        return CountsOut(received=received, held=held)

    return r


# -- request bodies --------------------------------------------------------------------------


async def _uploads(request: Request, stack: AsyncExitStack, limits: Limits) -> list[Upload]:
    """The files of a submission body, read under ``limits`` (services/common/bounds.py):
    refused with 413 once the body, or one file of it, passes its limit."""
    try:
        return await _bounded_uploads(request, stack, limits)
    except LimitExceeded as e:
        raise HTTPException(413, str(e)) from None


async def _bounded_uploads(request: Request, stack: AsyncExitStack, limits: Limits) -> list[Upload]:
    ctype = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await bounds.parse_form(
            bounds.capped(request, limits.request_bytes), limits, MAX_FILES
        )
        stack.push_async_callback(form.close)
        parts = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
        if not parts:
            raise HTTPException(
                400, "the form has no part named `file`; send each DICOM file as a `file` part"
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
            raise HTTPException(400, "the zip holds no files; zip the folder of DICOM files")
        if len(entries) > MAX_FILES:
            raise HTTPException(
                413, f"the zip holds {len(entries)} files, more than {MAX_FILES}; split it"
            )
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
            raise HTTPException(400, "the request body is empty; send the DICOM file as the body")
        return [_file_upload(_filename(request), body, limits)]
    raise HTTPException(
        415,
        f"cannot take {ctype} here; send application/dicom, multipart/form-data or application/zip",
    )


def _file_upload(name: str, f: UploadFile, limits: Limits) -> Upload:
    return Upload(name, functools.partial(bounds.read_file, f.file, limits), size=f.size or 0)


def _open_zip(f: BinaryIO) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise HTTPException(
            400,
            f"the body is not a readable zip file ({e}); send a .zip archive, "
            "or the DICOM files themselves",
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
