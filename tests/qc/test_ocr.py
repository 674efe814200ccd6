"""Burned-in text is found where it is, and slices without text give no boxes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from services.qc import ocr
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
           at: tuple[int, int] = (12, 12)) -> np.ndarray:  # fmt: skip
    rng = np.random.default_rng(seed)
    frame = rng.normal(60, 25, (512, 512)).clip(0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:512, :512]
    frame[((yy - 256) ** 2 + (xx - 256) ** 2) < 180**2] = 140
    ring = ((yy - 256) ** 2 + (xx - 256) ** 2) ** 0.5
    frame[(ring > 150) & (ring < 157)] = 255  # bright bone: not text
    img = Image.fromarray(frame)
    if text:
        ImageDraw.Draw(img).text(at, text, fill=250, font=ImageFont.truetype(font, size))
    return np.asarray(img)


@pytest.mark.parametrize("font", FONTS)
@pytest.mark.parametrize("text", ["DOE^JOHN", "03/17/1951", "MRN 88442211"])
def test_burned_in_text_is_found_where_it_is(font: str, text: str) -> None:
    boxes = ocr.find_text(slice_(1, text, font, 16, at=(300, 470)))
    assert boxes, "the text should be found"
    x0 = min(b.left for b in boxes)
    y0 = min(b.top for b in boxes)
    assert 290 <= x0 <= 330 and 460 <= y0 <= 500


def test_a_slice_without_text_gives_no_boxes() -> None:
    assert ocr.find_text(slice_(2)) == []
