"""Slices rendered for curators: windowed, inverted where the photometry says so, colour
kept, compressed syntaxes decoded, and a clear placeholder where nothing can be shown."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from services.common.imaging.render import FrameOutOfRange, render_frame, to_uint8, window_of


def _file(name: str) -> Dataset:
    path = get_testdata_file(name)
    assert path is not None
    return pydicom.dcmread(path)


def _image(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_a_ct_slice_renders_as_a_png_of_its_size_with_detail() -> None:
    ds = _file("CT_small.dcm")
    out = render_frame(ds)
    assert out.placeholder is None and out.media_type == "image/png"
    img = _image(out.data)
    assert img.shape == (ds.Rows, ds.Columns)
    assert img.std() > 10, "a real slice is not a flat image"


@pytest.mark.parametrize(
    "name",
    ["JPEG2000.dcm", "MR_small_jp2klossless.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_RLE.dcm"],
)
def test_compressed_transfer_syntaxes_are_decoded(name: str) -> None:
    out = render_frame(_file(name))
    assert out.placeholder is None
    assert _image(out.data).std() > 1


def test_colour_stays_colour_and_webp_is_offered() -> None:
    out = render_frame(_file("SC_rgb_jpeg_dcmtk.dcm"), fmt="webp")
    assert out.media_type == "image/webp"
    assert _image(out.data).shape[-1] == 3


def test_the_window_decides_what_is_white() -> None:
    values = np.array([[-1000, 0, 40, 80, 3000]], dtype=np.int16)
    gray = to_uint8(values, (40, 80))
    assert gray[0, 0] == 0 and gray[0, -1] == 255
    assert 100 < gray[0, 2] < 155, "the window's centre is mid-grey"


def test_monochrome1_is_inverted() -> None:
    ds = _file("MR_small.dcm")
    normal = _image(render_frame(ds).data).astype(int)
    ds.PhotometricInterpretation = "MONOCHROME1"
    inverted = _image(render_frame(ds).data).astype(int)
    assert np.array_equal(normal, 255 - inverted)


def test_window_from_the_header_and_multi_frame() -> None:
    ds = _file("rtdose.dcm")
    assert window_of(ds) is None
    assert render_frame(ds, frame=3).placeholder is None
    with pytest.raises(FrameOutOfRange):
        render_frame(ds, frame=int(ds.NumberOfFrames))


def test_no_pixel_data_and_undecodable_data_give_a_placeholder_saying_why() -> None:
    ds = _file("CT_small.dcm")
    del ds.PixelData
    out = render_frame(ds)
    assert out.placeholder == "this instance has no pixel data"
    assert _image(out.data).size > 0
    broken = _file("JPEG2000.dcm")
    broken.PixelData = b"\x00" * 64
    out = render_frame(broken)
    assert out.placeholder is not None and "cannot decode" in out.placeholder
