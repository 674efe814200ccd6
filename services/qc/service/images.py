"""Images of curated instances for the curator: rendered slices (cached) and OCR evidence
of burned-in text. Decoding, rendering and OCR run in worker threads, off the event loop."""

from __future__ import annotations

import asyncio
import io
from collections import OrderedDict
from typing import TYPE_CHECKING

import pydicom
from pydicom.dataset import Dataset

from services.common.imaging import ocr
from services.common.imaging.render import (
    Format,
    FrameOutOfRange,
    Rendered,
    frame_count,
    render_frame,
)
from services.qc.domain import Conflict, NotFound

if TYPE_CHECKING:
    from services.qc.bootstrap import Qc
    from services.qc.models import Instance


class RenderCache:
    """Rendered slices by (object sha256, frame, format, window), least recently used
    first out once ``budget`` bytes are held."""

    def __init__(self, budget: int = 64 * 1024 * 1024) -> None:
        self.budget = budget
        self.held = 0
        self._items: OrderedDict[tuple[object, ...], Rendered] = OrderedDict()

    def get(self, key: tuple[object, ...]) -> Rendered | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: tuple[object, ...], item: Rendered) -> None:
        if key in self._items:
            return
        self._items[key] = item
        self.held += len(item.data)
        while self.held > self.budget and self._items:
            _, old = self._items.popitem(last=False)
            self.held -= len(old.data)


def _parse(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data), force=True)


async def _dataset(qc: Qc, inst: Instance) -> Dataset:
    if not inst.curation_key:
        raise NotFound(f"instance {inst.instance_id} has no de-identified object yet")
    data = await qc.store.get("curation", inst.curation_key)
    return await asyncio.to_thread(_parse, data)


async def render(
    qc: Qc,
    inst: Instance,
    frame: int = 0,
    fmt: Format = "png",
    window: tuple[float, float] | None = None,
) -> Rendered:
    key = (inst.sha256, frame, fmt, window)
    cached = qc.renders.get(key)
    if cached is not None:
        return cached
    ds = await _dataset(qc, inst)
    try:
        out = await asyncio.to_thread(render_frame, ds, frame, fmt=fmt, window=window)
    except FrameOutOfRange as e:
        raise NotFound(str(e)) from None
    qc.renders.put(key, out)
    return out


async def frames(qc: Qc, inst: Instance) -> int:
    header = inst.header or {}
    values = (header.get("00280008") or {}).get("Value") or [1]
    try:
        return max(1, int(float(values[0] or 1)))
    except (TypeError, ValueError):
        return frame_count(await _dataset(qc, inst))


async def text_boxes(qc: Qc, inst: Instance, frame: int = 0) -> list[ocr.TextBox]:
    """Where text is burned into a frame (as the curator sees it rendered)."""
    if not ocr.available():
        raise Conflict(
            "the burned-in text check needs Tesseract on the qc server: "
            "install Debian's tesseract-ocr"
        )
    shown = await render(qc, inst, frame, "png")
    if shown.placeholder:
        return []
    return await asyncio.to_thread(ocr.text_in, shown.data)
