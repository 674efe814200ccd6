"""Slices rendered for the curator's eye: one frame of an instance as an 8-bit PNG or WebP.

The pixel pipeline of PS3.3 C.11 in its usual order: the Modality LUT (RescaleSlope and
RescaleIntercept, C.11.1), then the VOI window (WindowCenter/WindowWidth, C.11.2.1.2, linear
function) or, without one, the frame's own value range; MONOCHROME1 is inverted so that
the image reads as the modality shows it (C.7.6.3.1.2); colour images are shown as RGB.
Compressed transfer syntaxes are decoded by pydicom's plugins where installed (pylibjpeg,
Pillow); a frame that cannot be decoded gets a clear placeholder instead of an error.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, pixel_array
from pydicom.uid import UID

Format = Literal["png", "webp"]
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "webp": "image/webp"}
PLACEHOLDER_SIZE = 256


@dataclass(frozen=True)
class Rendered:
    data: bytes
    media_type: str
    width: int
    height: int
    #: why the image is a placeholder instead of the frame (None: the frame itself)
    placeholder: str | None = None


class FrameOutOfRange(ValueError):
    pass


def frame_count(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def _first(value: Any) -> float | None:
    """The first value of a possibly multi-valued DS (WindowCenter may have several)."""
    if isinstance(value, list | tuple | MultiValue):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def window_of(ds: Dataset) -> tuple[float, float] | None:
    """The first VOI window the header gives, as (center, width); None without one."""
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is None or width is None or width < 1:
        return None
    return center, width


def to_uint8(values: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """Map modality values to 0..255 with the linear VOI function of PS3.3 C.11.2.1.2.1,
    or stretch the frame's value range when no window is given."""
    data = values.astype(np.float32, copy=False)
    if window is not None:
        center, width = window
        low = center - 0.5 - (width - 1) / 2
        span = max(width - 1, 1.0)
    else:
        low = float(data.min()) if data.size else 0.0
        span = max(float(data.max()) - low if data.size else 0.0, 1.0)
    scaled = (data - low) * (255.0 / span)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _placeholder(reason: str, fmt: Format) -> Rendered:
    img = Image.new("L", (PLACEHOLDER_SIZE, PLACEHOLDER_SIZE), 48)
    draw = ImageDraw.Draw(img)
    words, lines, line = reason.split(), [], ""
    for word in words:  # wrap to the image's width
        if len(line) + len(word) + 1 > 36:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    for i, text in enumerate(lines[:12]):
        draw.text((8, 8 + 14 * i), text, fill=230)
    return Rendered(_encode(img, fmt), MEDIA_TYPES[fmt], img.width, img.height, reason)


def _encode(img: Image.Image, fmt: Format) -> bytes:
    buf = io.BytesIO()
    if fmt == "webp":
        img.save(buf, format="WEBP", lossless=True, method=0)
    else:
        # compress_level 1: a 512×512 slice encodes in a few milliseconds
        img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _decode(ds: Dataset, frame: int) -> np.ndarray:
    if frame_count(ds) > 1:
        return np.asarray(pixel_array(ds, index=frame))
    return np.asarray(ds.pixel_array)


def render_frame(
    ds: Dataset,
    frame: int = 0,
    *,
    fmt: Format = "png",
    window: tuple[float, float] | None = None,
) -> Rendered:
    """One frame of ``ds`` as an image a browser shows; a placeholder saying why when the
    instance has no pixel data or its transfer syntax cannot be decoded here."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return _placeholder("this instance has no pixel data", fmt)
    frames = frame_count(ds)
    if not 0 <= frame < frames:
        raise FrameOutOfRange(f"frame {frame} is out of range: the instance has {frames}")
    meta = getattr(ds, "file_meta", None)
    syntax = UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else UID("")
    try:
        pixels = _decode(ds, frame)
    except Exception as e:  # a codec plugin missing or a damaged stream: show why
        name = syntax.name if syntax else "an unknown transfer syntax"
        return _placeholder(
            f"cannot decode {name} here ({type(e).__name__}); "
            "install pylibjpeg with its openjpeg and libjpeg plugins",
            fmt,
        )
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples == 3 and pixels.ndim == 3:
        rgb = pixels if pixels.dtype == np.uint8 else to_uint8(pixels, None)
        img = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
        return Rendered(_encode(img, fmt), MEDIA_TYPES[fmt], img.width, img.height)
    if pixels.ndim != 2:
        return _placeholder(f"cannot show {photometric} with {samples} samples per pixel", fmt)
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(pixels, ds)
        img = Image.fromarray(np.ascontiguousarray(to_uint8(rgb, None)), mode="RGB")
        return Rendered(_encode(img, fmt), MEDIA_TYPES[fmt], img.width, img.height)
    rescaled = "RescaleSlope" in ds or "RescaleIntercept" in ds
    values = apply_modality_lut(pixels, ds) if rescaled else pixels
    gray = to_uint8(values, window or window_of(ds))
    if photometric == "MONOCHROME1":
        gray = 255 - gray
    img = Image.fromarray(gray, mode="L")
    return Rendered(_encode(img, fmt), MEDIA_TYPES[fmt], img.width, img.height)
