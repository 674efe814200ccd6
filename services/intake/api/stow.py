"""STOW-RS (PS3.18 10.5): a site stores instances of a collection with
``POST /dicomweb/collections/{collection}/studies[/{study}]``, a multipart/related body of
PS3.10 files. Each part takes exactly the path of an HTTP upload (quarantine write, record,
event, integrity rules, a submission), and the answer is the Store Instances Response
(PS3.18 Annex I) in DICOM JSON:

- ReferencedSOPSequence: each instance stored; a WarningReason of B000 when it is kept in
  quarantine but held (a conflict with another patient, a value that breaks its VR, …);
- FailedSOPSequence: each part that is not an instance this collection can take, with its
  FailureReason — C000 when it is not a readable PS3.10 file with the UIDs it needs (the
  part is kept in quarantine as held, as any unreadable upload is), C409 when it belongs to
  another study than the one in the URL (not kept).

Each request is a submission of its own (``via`` stow-rs) unless it names one with
``?submission=``; its id comes back in the ``X-Imarc-Submission`` header: ``imarc submissions``
and the quarantine view show why anything was held.
"""

from __future__ import annotations

import asyncio
import functools
from contextlib import AsyncExitStack
from email.message import Message
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.common import bounds
from services.common.app import DomainError, Unavailable
from services.common.bounds import LimitExceeded, Limits, MalformedBody, Part
from services.common.security import AuthenticatedPrincipal
from services.intake import domain
from services.intake.api.deps import IntakeDep, Submitting, SubmittingDep, admit
from services.intake.api.uploads import MAX_FILES, TooLarge, UnsupportedType
from services.intake.service import receiving
from services.intake.service.recording import FileOutcome

router = APIRouter(prefix="/dicomweb/collections", tags=["DICOMweb (STOW-RS)"])

DICOM_JSON = "application/dicom+json"
#: PS3.18 Table I.2-2 / PS3.4 Table B.2-1
CANNOT_UNDERSTAND, STUDY_MISMATCH, STORED_HELD = 0xC000, 0xC409, 0xB000

STOW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            'multipart/related; type="application/dicom"; boundary=…: one PS3.10 file per part.'
        ),
        "content": {"multipart/related": {"schema": {"type": "string", "format": "binary"}}},
    },
    "responses": {
        "200": {"description": "every instance stored", "content": {DICOM_JSON: {}}},
        "202": {"description": "some stored, some held or failed", "content": {DICOM_JSON: {}}},
        "409": {"description": "none stored", "content": {DICOM_JSON: {}}},
        "413": {"description": "the body, or a part, passes a limit; nothing stored"},
        "415": {"description": 'not multipart/related; type="application/dicom"'},
    },
}


class BadBody(DomainError):
    status = 400


@router.post("/{collection}/studies", openapi_extra=STOW_BODY, response_class=JSONResponse)
async def store(
    collection: str,
    request: Request,
    intake: IntakeDep,
    principal: AuthenticatedPrincipal,
    asked: SubmittingDep,
) -> JSONResponse:
    """Store instances (STOW-RS) of any study in the collection's quarantine."""
    return await _store(collection, None, request, intake, principal, asked)


@router.post("/{collection}/studies/{study}", openapi_extra=STOW_BODY, response_class=JSONResponse)
async def store_study(
    collection: str,
    study: str,
    request: Request,
    intake: IntakeDep,
    principal: AuthenticatedPrincipal,
    asked: SubmittingDep,
) -> JSONResponse:
    """Store instances (STOW-RS) of one study; parts of another study fail (C409)."""
    return await _store(collection, study, request, intake, principal, asked)


async def _store(
    collection: str,
    study: str | None,
    request: Request,
    intake: IntakeDep,
    principal: AuthenticatedPrincipal,
    asked: Submitting,
) -> JSONResponse:
    to = await admit(intake, principal, collection, asked)
    boundary = _boundary(request.headers.get("content-type", ""))
    limits = Limits.of(intake.settings)
    async with AsyncExitStack() as stack:
        try:
            parts = await bounds.parse_related(
                bounds.capped(request, limits.request_bytes), boundary, limits, MAX_FILES, stack
            )
        except LimitExceeded as e:
            raise TooLarge(str(e)) from None
        except MalformedBody as e:
            raise BadBody(f"{e}; send each PS3.10 file as one part") from None
        failed: list[dict[str, Any]] = []
        if study is not None:
            parts, failed = await asyncio.to_thread(_of_study, parts, study, limits)
        uploads = [
            receiving.Upload(
                f"STOW-RS part {i}",
                functools.partial(bounds.read_file, p.file, limits, f"part {i}"),
                size=p.size,
            )
            for i, p in enumerate(parts, 1)
        ]
        result = None
        if uploads:
            try:
                result = await receiving.receive(
                    intake.ctx, collection, to.site, principal.subject, uploads,
                    to.submission or None, via="stow-rs",
                )  # fmt: skip
            except receiving.StoreUnavailable:
                raise Unavailable(
                    "the object store did not take the instances; nothing was recorded, "
                    "so send them again"
                ) from None
    stored: list[dict[str, Any]] = []
    for f in result.files if result else []:
        item, kept = _outcome(f)
        (stored if kept else failed).append(item)
    body: dict[str, Any] = {"00081190": {"vr": "UR"}}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": stored}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    warned = any("00081196" in item for item in stored)
    status = 409 if not stored else 202 if failed or warned else 200
    headers = {"X-Imarc-Submission": result.submission_id} if result else {}
    return JSONResponse(body, status_code=status, headers=headers, media_type=DICOM_JSON)


def _boundary(content_type: str) -> str:
    m = Message()
    m["content-type"] = content_type
    kind, part_type = m.get_content_type(), m.get_param("type")
    if kind != "multipart/related" or str(part_type or "").lower() != "application/dicom":
        raise UnsupportedType(
            f"cannot store {content_type or 'a body without Content-Type'}; send "
            'multipart/related; type="application/dicom" with one PS3.10 file per part'
        )
    boundary = m.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise BadBody("the Content-Type names no boundary; add boundary=… to it")
    return boundary


def _item(sop_class: str, sop_instance: str) -> dict[str, Any]:
    def ui(value: str) -> dict[str, Any]:
        return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}

    return {"00081150": ui(sop_class), "00081155": ui(sop_instance)}


def _outcome(f: FileOutcome) -> tuple[dict[str, Any], bool]:
    """The response item of one part, and whether it counts as stored: stored, stored but
    held (a warning), or failed."""
    known = f.accepted or f.identity
    if known is None:  # not an instance (unreadable, no UIDs): kept as held, told as failed
        item = _item("", "")
        item["00081197"] = {"vr": "US", "Value": [CANNOT_UNDERSTAND]}
        return item, False
    item = _item(known.sop_class_uid, known.sop_instance_uid)
    item["00081190"] = {"vr": "UR"}
    if isinstance(f.verdict, domain.Held):
        item["00081196"] = {"vr": "US", "Value": [STORED_HELD]}
    return item, True


def _of_study(parts: list[Part], study: str, limits: Limits) -> tuple[list[Part], list[Any]]:
    """The parts of ``study`` and the failure items of the others (which are not kept);
    parts that are not readable instances go on, to be held as any unreadable file is."""
    keep: list[Part] = []
    failed: list[Any] = []
    for i, p in enumerate(parts, 1):
        try:
            verdict = domain.inspect(bounds.read_file(p.file, limits, f"part {i}"), limits)
        except LimitExceeded:
            keep.append(p)
            continue
        if isinstance(verdict, domain.Accepted) and verdict.study_instance_uid != study:
            item = _item(verdict.sop_class_uid, verdict.sop_instance_uid)
            item["00081197"] = {"vr": "US", "Value": [STUDY_MISMATCH]}
            failed.append(item)
        else:
            keep.append(p)
    return keep, failed
