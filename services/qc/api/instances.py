"""One curated instance as a curator sees it: its de-identified header, its slices
rendered, and where text is burned into them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from services.common.imaging.web import IMAGE_RESPONSES, FrameParams, image_response
from services.common.security import AuthenticatedPrincipal, forbid
from services.qc import workspace
from services.qc.api.deps import QcDep
from services.qc.inventory import keyword_of_path
from services.qc.models import Instance
from services.qc.schemas import HeaderElement, OcrOut, TextBoxOut
from services.qc.service import images

router = APIRouter(prefix="/api/qc/instances", tags=["qc"])


async def _instance(qc: Any, instance_id: str, principal: Any) -> Instance:
    inst = await workspace.instance(qc.db, instance_id)
    if not (principal.can_curate(inst.collection) or principal.can_manage(inst.collection)):
        raise forbid(f"see the instances of collection {inst.collection}")
    return inst


def _flatten(header: dict[str, Any], depth: int = 0, prefix: str = "") -> list[HeaderElement]:
    out: list[HeaderElement] = []
    for key in sorted(header):
        entry = header[key] or {}
        vr = str(entry.get("vr", ""))
        values = entry.get("Value") or []
        if vr == "SQ":
            out.append(HeaderElement(tag=key, keyword=keyword_of_path(key), vr=vr,
                                     value=f"{len(values)} item(s)", depth=depth))  # fmt: skip
            for i, item in enumerate(values):
                out.extend(_flatten(item or {}, depth + 1, f"{prefix}{key}[{i}]."))
            continue
        shown = "\\".join(
            (v.get("Alphabetic", "") if isinstance(v, dict) else str(v)) if v is not None else ""
            for v in values
        )
        out.append(
            HeaderElement(tag=key, keyword=keyword_of_path(key), vr=vr, value=shown, depth=depth)
        )
    return out


@router.get("/{instance_id}/header", response_model=list[HeaderElement])
async def header(
    instance_id: str, qc: QcDep, principal: AuthenticatedPrincipal
) -> list[HeaderElement]:
    """The de-identified header, element by element, sequences indented."""
    inst = await _instance(qc, instance_id, principal)
    return _flatten(inst.header or {})


@router.get("/{instance_id}/render", responses=IMAGE_RESPONSES, response_class=Response)
async def render(
    instance_id: str, qc: QcDep, principal: AuthenticatedPrincipal, q: FrameParams
) -> Response:
    """One frame as an image: the header's window, or ``center``/``width`` when given."""
    inst = await _instance(qc, instance_id, principal)
    out = await images.render(qc, inst, q.frame, q.format, q.window)
    return image_response(out, "private, max-age=3600")


@router.get("/{instance_id}/ocr", response_model=OcrOut)
async def burned_in_text(
    instance_id: str,
    qc: QcDep,
    principal: AuthenticatedPrincipal,
    frame: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> OcrOut:
    """Boxes where text is burned into the frame (the text itself is never returned)."""
    inst = await _instance(qc, instance_id, principal)
    boxes = await images.text_boxes(qc, inst, frame)
    return OcrOut(
        instance_id=instance_id,
        frame=frame,
        boxes=[
            TextBoxOut(
                left=b.left, top=b.top, width=b.width, height=b.height, confidence=b.confidence
            )
            for b in boxes
        ],
    )
