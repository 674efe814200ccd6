"""Evidence of text burned into pixels: OCR boxes a curator sees over the image.

Header rules (services/deid/engine/pixels.py) decide which instances *may* carry burned-in
text; this finds where text actually is, with Tesseract (Debian's ``tesseract-ocr``, called
through pytesseract). Burned-in annotations are light glyphs on a dark, noisy image, so
the frame's brightest pixels are kept as dark glyphs on white (anatomy and noise fall
away), upscaled when small, and read once; a frame with nothing that bright is not read.
Only boxes and confidences leave this module: the recognised text may itself be PHI and
is never returned, logged or stored.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

#: Tesseract's word confidence (0–100) below which a word is ignored. It measures how sure
#: the *reading* is, not whether text is there: on the clean glyph mask even a word read
#: wrongly is real text, so every word it reports counts as evidence by default.
MIN_CONFIDENCE = 0
#: Frames narrower than this are upscaled before OCR (small glyphs are lost otherwise).
MIN_WIDTH = 1536


class OcrUnavailable(RuntimeError):
    """Tesseract is not installed: the burned-in text check cannot run here."""


@dataclass(frozen=True)
class TextBox:
    """A rectangle of the frame (pixel columns/rows) where text was read."""

    left: int
    top: int
    width: int
    height: int
    confidence: float

    def as_rect(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), exclusive ends — the form blanking rules take."""
        return self.left, self.top, self.left + self.width, self.top + self.height


def available() -> bool:
    return shutil.which("tesseract") is not None


#: Burned-in annotations are drawn at (or near) the brightest value of the frame.
MIN_GLYPH_VALUE = 150
#: Boxes smaller than this (pixels, either side) are noise, not glyphs a reader could read.
MIN_BOX_SIDE = 5


#: A bright structure taller or wider than this is anatomy or hardware, not a glyph.
MAX_GLYPH_SIDE = 96


def glyph_mask(gray: np.ndarray) -> np.ndarray:
    """The frame's brightest pixels as dark glyphs on white, the form Tesseract reads best.

    Anatomy and noise fall below the threshold; bright structures bigger than any glyph (a
    bone ring, a wire, a collimator edge) are removed too, because page-layout analysis
    gives up on text that stands inside them."""
    if not gray.size:
        return np.full_like(gray, 255)
    # text a little darker than the brightest structure (bone, metal) must stay in
    threshold = max(0.75 * float(np.percentile(gray, 99.5)), MIN_GLYPH_VALUE)
    bright = gray >= threshold
    labels, count = ndimage.label(bright, structure=np.ones((3, 3), dtype=bool))
    if count:
        for i, where in enumerate(ndimage.find_objects(labels), start=1):
            if where is None:
                continue
            rows, cols = where
            if rows.stop - rows.start > MAX_GLYPH_SIDE or cols.stop - cols.start > MAX_GLYPH_SIDE:
                bright[where][labels[where] == i] = False
    return np.where(bright, 0, 255).astype(np.uint8)


def _plausible(text: str) -> bool:
    """A real word: at least two letters or digits (noise reads as stray punctuation)."""
    return sum(ch.isalnum() for ch in text) >= 2


def _merge(boxes: list[TextBox]) -> list[TextBox]:
    """Overlapping boxes (the same word found in two variants) become one."""
    out: list[TextBox] = []
    for b in sorted(boxes, key=lambda b: (b.top, b.left)):
        for i, o in enumerate(out):
            if (
                b.left < o.left + o.width
                and o.left < b.left + b.width
                and b.top < o.top + o.height
                and o.top < b.top + b.height
            ):
                x0, y0 = min(b.left, o.left), min(b.top, o.top)
                x1 = max(b.left + b.width, o.left + o.width)
                y1 = max(b.top + b.height, o.top + o.height)
                out[i] = TextBox(x0, y0, x1 - x0, y1 - y0, max(b.confidence, o.confidence))
                break
        else:
            out.append(b)
    return out


def find_text(frame: np.ndarray, *, min_confidence: float = MIN_CONFIDENCE) -> list[TextBox]:
    """Boxes of the words Tesseract reads in an 8-bit frame (grey or RGB), in the frame's
    own pixel coordinates. Raises OcrUnavailable when tesseract is not installed."""
    if not available():
        raise OcrUnavailable(
            "tesseract is not installed; install Debian's tesseract-ocr to check pixels for text"
        )
    import pytesseract

    gray = frame if frame.ndim == 2 else np.asarray(Image.fromarray(frame).convert("L"))
    mask = glyph_mask(gray)
    if not (mask == 0).any():
        return []  # nothing bright enough to be an annotation: no OCR needed
    scale = min(4, max(1, -(-MIN_WIDTH // max(1, gray.shape[1]))))  # ceil(MIN_WIDTH / width)
    img = Image.fromarray(mask)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    data = pytesseract.image_to_data(img, config="--psm 11", output_type=pytesseract.Output.DICT)
    found: list[TextBox] = []
    for i, text in enumerate(data["text"]):
        conf = float(data["conf"][i])
        if conf < min_confidence or not _plausible(text or ""):
            continue
        box = TextBox(
            left=int(data["left"][i]) // scale,
            top=int(data["top"][i]) // scale,
            width=-(-int(data["width"][i]) // scale),
            height=-(-int(data["height"][i]) // scale),
            confidence=conf,
        )
        if box.width >= MIN_BOX_SIDE and box.height >= MIN_BOX_SIDE:
            found.append(box)
    return _merge(found)


def text_in(shown: bytes) -> list[TextBox]:
    """Boxes of burned-in text in a frame as a reviewer sees it (an encoded PNG or WebP
    from :func:`services.common.imaging.render.render_frame`)."""
    return find_text(np.asarray(Image.open(io.BytesIO(shown))))
