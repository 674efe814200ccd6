"""Burned-in text detection: recall, false-positive rate and OCR time per slice.

Generates 512×512 slices (noise, a bright body, bright bone rings and spots) with and
without burned-in text — names, dates and IDs in several fonts, sizes and places — and runs
services.common.imaging.ocr.find_text on each. A slice with text counts as found when a box overlaps
where the text was drawn; a slice without text counts as a false positive when any box
comes back.

    python bench/ocr_bench.py [--slices 120] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from services.common.imaging.ocr import find_text

FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
]
TEXTS = [
    "DOE^JOHN",
    "SMITH, JANE A",
    "03/17/1951",
    "17.03.1951",
    "1951-03-17",
    "MRN 88442211",
    "ACC: 99887766",
    "ID:A1234567",
    "Mueller Hans 01.02.1960",
]


def body(rng: np.random.Generator) -> np.ndarray:
    frame = rng.normal(60, 25, (512, 512)).clip(0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:512, :512]
    r = np.hypot(yy - 256, xx - 256)
    frame[r < rng.integers(150, 220)] = rng.integers(110, 170)
    frame[(r > 140) & (r < 140 + rng.integers(4, 10))] = 255  # bone ring
    for _ in range(int(rng.integers(0, 8))):  # contrast, calcifications
        cy, cx = rng.integers(80, 430, 2)
        frame[np.hypot(yy - cy, xx - cx) < rng.integers(2, 9)] = int(rng.integers(200, 256))
    return frame


def with_text(frame: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, ...]]:
    img = Image.fromarray(frame)
    font = ImageFont.truetype(str(rng.choice(FONTS)), int(rng.choice([9, 11, 13, 16, 20, 28])))
    text = str(rng.choice(TEXTS))
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    at = (int(rng.integers(2, 510 - (x1 - x0))), int(rng.integers(2, 510 - (y1 - y0))))
    draw.text(at, text, fill=int(rng.integers(225, 256)), font=font)
    box = draw.textbbox(at, text, font=font)
    return np.asarray(img), box


def overlaps(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, default=120, help="slices of each kind")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    found = false_pos = 0
    times: list[float] = []
    for _ in range(args.slices):
        frame, drawn = with_text(body(rng), rng)
        start = time.perf_counter()
        boxes = find_text(frame)
        times.append(time.perf_counter() - start)
        found += any(overlaps(b.as_rect(), drawn) for b in boxes)
    clean_times: list[float] = []
    for _ in range(args.slices):
        start = time.perf_counter()
        boxes = find_text(body(rng))
        clean_times.append(time.perf_counter() - start)
        false_pos += bool(boxes)
    print(
        json.dumps(
            {
                "slices_with_text": args.slices,
                "slices_without_text": args.slices,
                "recall": round(found / args.slices, 3),
                "false_positive_rate": round(false_pos / args.slices, 3),
                "ocr_ms_per_slice_with_text_p50": round(1000 * statistics.median(times), 1),
                "ocr_ms_per_slice_without_text_p50": round(
                    1000 * statistics.median(clean_times), 1
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
