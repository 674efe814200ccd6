"""Burned-in text is found where it is, and slices without text give no boxes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from services.common.imaging import ocr
from tests.conftest import need_tool


@pytest.fixture(autouse=True)
def _tesseract() -> None:
    need_tool("tesseract", "tesseract-ocr")


FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
]


def slice_(seed: int, text: str = "", font: str = FONTS[0], size: int = 14,
           at: tuple[int, int] = (12, 12)) -> tuple[np.ndarray, tuple[int, ...]]:  # fmt: skip
    rng = np.random.default_rng(seed)
    frame = rng.normal(60, 25, (512, 512)).clip(0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:512, :512]
    frame[((yy - 256) ** 2 + (xx - 256) ** 2) < 180**2] = 140
    ring = ((yy - 256) ** 2 + (xx - 256) ** 2) ** 0.5
    frame[(ring > 150) & (ring < 157)] = 255  # bright bone: not text
    img = Image.fromarray(frame)
    drawn: tuple[int, ...] = ()
    if text:
        draw, face = ImageDraw.Draw(img), ImageFont.truetype(font, size)
        draw.text(at, text, fill=250, font=face)
        drawn = draw.textbbox(at, text, font=face)
    return np.asarray(img), drawn


@pytest.mark.parametrize("font", FONTS)
@pytest.mark.parametrize("text", ["DOE^JOHN", "03/17/1951", "MRN 88442211"])
def test_burned_in_text_is_found_where_it_is(font: str, text: str) -> None:
    frame, (x0, y0, x1, y1) = slice_(1, text, font, 16, at=(300, 470))
    boxes = ocr.find_text(frame)
    assert boxes, "the text should be found"
    for b in boxes:  # every box lies on the text (the bone ring and the body give none)
        bx0, by0, bx1, by1 = b.as_rect()
        assert bx0 < x1 and x0 < bx1 and by0 < y1 and y0 < by1, (b, (x0, y0, x1, y1))


def test_a_slice_without_text_gives_no_boxes() -> None:
    assert ocr.find_text(slice_(2)[0]) == []
