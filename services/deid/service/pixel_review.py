"""A curator's review of instances held for their pixels (possible burned-in PHI): the
quarantined image rendered, OCR evidence of where text is burned in (attached to each
such hold in the background), and release — as it is, or with rectangles blanked first.

Blanking writes a new quarantine object (the original's bytes with the rectangles set to
0 in its native pixel data; nothing else changes) and de-identifies that one past the
pixel screen; the original stays in quarantine beside it."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import select

from services.common.app import Conflict, NotFound
from services.common.events import ObjectRef
from services.common.imaging import ocr
from services.common.imaging.render import Format, FrameOutOfRange, Rendered, render_frame
from services.common.store import ObjectNotFound
from services.deid import domain
from services.deid.engine.pixels import BlankingError, blank
from services.deid.models import Hold
from services.deid.service.holds import Outcome
from services.deid.service.pipeline import release

if TYPE_CHECKING:
    from services.deid.bootstrap import Deid

log = logging.getLogger("imarc.deid")

#: pixel holds given OCR evidence per round of the background pass
EVIDENCE_BATCH = 8

Rectangle = tuple[int, int, int, int]  # left, top, width, height


async def pixel_hold(deid: Deid, collection: str, instance_id: str) -> Hold:
    async with deid.db.session() as s:
        held = await s.get(Hold, instance_id)
    if held is None or held.collection != collection:
        raise NotFound(
            f"instance {instance_id} is not held in {collection}; list the held instances"
        )
    return held


async def _original(deid: Deid, held: Hold) -> bytes:
    key = str(held.received["object"]["key"])
    try:
        return await deid.store.get("quarantine", key)
    except ObjectNotFound:
        raise Conflict(
            f"the quarantined object of {held.instance_id} is missing; reject it and ask "
            "the site to send it again"
        ) from None


async def _original_dataset(deid: Deid, held: Hold) -> Dataset:
    data = await _original(deid, held)
    return await asyncio.to_thread(pydicom.dcmread, io.BytesIO(data), force=True)


async def render_held(
    deid: Deid,
    collection: str,
    instance_id: str,
    frame: int = 0,
    fmt: Format = "png",
    window: tuple[float, float] | None = None,
) -> Rendered:
    """A frame of the held original as the curator reviews it."""
    ds = await _original_dataset(deid, await pixel_hold(deid, collection, instance_id))
    try:
        return await asyncio.to_thread(render_frame, ds, frame, fmt=fmt, window=window)
    except FrameOutOfRange as e:
        raise NotFound(str(e)) from None


def _boxes(ds: Dataset) -> list[dict[str, float]]:
    shown = render_frame(ds, 0, fmt="png")
    if shown.placeholder:
        return []
    return [
        {
            "left": b.left,
            "top": b.top,
            "width": b.width,
            "height": b.height,
            "confidence": b.confidence,
        }
        for b in ocr.text_in(shown.data)
    ]


async def evidence(deid: Deid, collection: str, instance_id: str) -> list[dict[str, float]]:
    """The OCR evidence of a pixel hold: found now if the background pass has not yet."""
    held = await pixel_hold(deid, collection, instance_id)
    if held.text_boxes is not None:
        return held.text_boxes
    if not ocr.available():
        raise Conflict(
            "the burned-in text check needs Tesseract on the deid server: "
            "install Debian's tesseract-ocr"
        )
    return await _attach(deid, held)


async def _attach(deid: Deid, held: Hold) -> list[dict[str, float]]:
    ds = await _original_dataset(deid, held)
    boxes = await asyncio.to_thread(_boxes, ds)
    async with deid.db.session() as s, s.begin():
        row = await s.get(Hold, held.instance_id, with_for_update=True)
        if row is not None and row.event_id == held.event_id:  # still the same hold
            row.text_boxes = boxes
    return boxes


async def attach_pending_evidence(deid: Deid) -> int:
    """Attach OCR evidence to pixel holds that have none yet; how many were looked at."""
    if not ocr.available():
        return 0
    async with deid.db.session() as s:
        pending = (
            await s.scalars(
                select(Hold)
                .where(Hold.kind == "burned_in_phi", Hold.text_boxes.is_(None))
                .order_by(Hold.held_at)
                .limit(EVIDENCE_BATCH)
            )
        ).all()
    for held in pending:
        try:
            await _attach(deid, held)
        except Conflict:
            log.warning("no OCR evidence for %s: its quarantined object is missing",
                        held.instance_id)  # fmt: skip
    return len(pending)


def _blanked(data: bytes, rectangles: Sequence[Rectangle]) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    columns, rows = int(ds.get("Columns", 0) or 0), int(ds.get("Rows", 0) or 0)
    for x, y, w, h in rectangles:
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > columns or y + h > rows:
            raise BlankingError(
                f"rectangle ({x}, {y}, {w}, {h}) is not inside the {columns}x{rows} image"
            )
    blank(ds, rectangles)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


async def blank_and_release(
    deid: Deid,
    collection: str,
    instance_id: str,
    rectangles: Sequence[Rectangle],
    by: str,
) -> Outcome:
    """Blank ``rectangles`` in every frame of a pixel hold and de-identify the result past
    the pixel screen."""
    held = await pixel_hold(deid, collection, instance_id)
    if not domain.releases_pixel_hold(held.reason):
        raise Conflict(
            f"instance {instance_id} is held for {held.kind}, not for its pixels; "
            "release it without blanking"
        )
    data = await _original(deid, held)
    try:
        blanked = await asyncio.to_thread(_blanked, data, rectangles)
    except BlankingError as e:
        raise Conflict(f"cannot blank instance {instance_id}: {e}") from None
    key = f"{held.received['object']['key']}.blanked-{held.event_id[:8]}"
    stored = await deid.store.put("quarantine", key, blanked)
    obj = ObjectRef(zone="quarantine", key=key, size=stored.size, sha256=stored.sha256)
    log.info("%s blanked %d rectangle(s) of %s", by, len(rectangles), instance_id,
             extra={"service": "deid", "collection": collection})  # fmt: skip
    outcome = await release(deid, collection, instance_id, by, replacement=obj)
    if outcome is None:
        raise NotFound(f"instance {instance_id} was released meanwhile; list again")
    return outcome
