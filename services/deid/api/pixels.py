"""Instances held for their pixels, as a curator reviews them: a frame of the original,
where OCR found burned-in text, and release with rectangles blanked."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from services.common.imaging.web import IMAGE_RESPONSES, FrameParams, image_response
from services.common.security import AuthenticatedPrincipal
from services.deid.api.deps import DeidDep, may_curate
from services.deid.api.holds import released
from services.deid.schemas import BlankIn, ReleaseOutcome, TextBox
from services.deid.service import pixel_review

router = APIRouter(prefix="/api/deid/collections", tags=["deid"])


@router.get(
    "/{collection}/held/{instance_id}/render",
    responses=IMAGE_RESPONSES,
    response_class=Response,
)
async def render(
    collection: str,
    instance_id: str,
    deid: DeidDep,
    principal: AuthenticatedPrincipal,
    q: FrameParams,
) -> Response:
    """A frame of the held original (curators of the collection; never cached)."""
    may_curate(principal, collection)
    out = await pixel_review.render_held(deid, collection, instance_id, q.frame, q.format, q.window)
    return image_response(out, "private, no-store")


@router.get("/{collection}/held/{instance_id}/ocr", response_model=list[TextBox])
async def burned_in_text(
    collection: str, instance_id: str, deid: DeidDep, principal: AuthenticatedPrincipal
) -> list[TextBox]:
    """Where OCR finds text burned into the first frame (the text itself is never sent)."""
    may_curate(principal, collection)
    boxes = await pixel_review.evidence(deid, collection, instance_id)
    return [TextBox.model_validate(b) for b in boxes]


@router.post("/{collection}/held/{instance_id}/blank", response_model=ReleaseOutcome)
async def blank_and_release(
    collection: str,
    instance_id: str,
    body: BlankIn,
    deid: DeidDep,
    principal: AuthenticatedPrincipal,
) -> ReleaseOutcome:
    """Blank the rectangles in every frame (native pixel data only) and release the
    instance past the pixel screen."""
    may_curate(principal, collection)
    rectangles = [(r.left, r.top, r.width, r.height) for r in body.rectangles]
    outcome = await pixel_review.blank_and_release(
        deid, collection, instance_id, rectangles, principal.subject
    )
    return released(outcome)
