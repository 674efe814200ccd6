"""A curator reviews an instance held for possible burned-in PHI: the held original is
rendered, OCR evidence of where text is burned in is attached to the hold, and the
curator blanks those boxes and releases it — the published pixels no longer carry the
text, the rest of the image is the original's."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from services.common.events import InstanceDeidentified, InstanceHeld
from services.common.imaging import ocr
from tests.conftest import need_tool
from tests.deid import dicom
from tests.deid.helpers import Deid, curator_headers, deid_platform, submitter_headers
from tests.deid.test_service import curated

C = "Demo-US"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.fixture(autouse=True)
def _tesseract() -> None:
    need_tool("tesseract", "tesseract-ocr")


def screen_capture_with_text() -> tuple[bytes, tuple[int, int, int, int]]:
    """A 256×256 Secondary Capture (BurnedInAnnotation YES) with a name and a date burned
    into its top left corner; returns the file and where the text was drawn."""
    rng = np.random.default_rng(7)
    frame = rng.normal(50, 12, (256, 256)).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(frame)
    draw, face = ImageDraw.Draw(img), ImageFont.truetype(FONT, 16)
    draw.text((10, 8), "DOE JOHN 03/14/1961", fill=250, font=face)
    drawn = draw.textbbox((10, 8), "DOE JOHN 03/14/1961", font=face)
    ds = dicom.read(dicom.burned_in())
    ds.Rows = ds.Columns = 256
    ds.PixelData = np.asarray(img).tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue(), (drawn[0], drawn[1], drawn[2] - drawn[0], drawn[3] - drawn[1])


async def held_pixels(d: Deid, raw: bytes) -> str:
    await d.create_collection(C)
    iid = await d.submit(C, raw, filename="capture-1.dcm")
    held = await d.wait_for(InstanceHeld, instance_id=iid)
    assert held.reason.startswith("possible burned-in PHI")
    return iid


async def test_a_curator_sees_the_text_boxes_blanks_them_and_releases(tmp_path: Path) -> None:
    raw, (x, y, w, h) = screen_capture_with_text()
    async with deid_platform(tmp_path) as d:
        iid = await held_pixels(d, raw)
        base = f"/api/deid/collections/{C}/held/{iid}"

        # the evidence is attached to the hold without anyone asking for it
        async def evidence() -> list | None:  # type: ignore[type-arg]
            r = await d.client.get(f"/api/deid/collections/{C}/held", headers=curator_headers(C))
            row = next(h for h in r.json() if h["instance_id"] == iid)
            return row["text_boxes"]

        await d.p.wait_until(evidence, what="OCR evidence on the pixel hold")
        rows = (await d.client.get(f"/api/deid/collections/{C}/held",
                                   headers=curator_headers(C))).json()  # fmt: skip
        row = next(h for h in rows if h["instance_id"] == iid)
        assert (row["code"], row["filename"]) == ("burned_in_phi", "capture-1.dcm")
        boxes = row["text_boxes"]
        assert boxes, "OCR found the burned-in name and date"
        for b in boxes:  # every box lies where the text was drawn (a few pixels of slack)
            assert x - 4 <= b["left"] and b["left"] + b["width"] <= x + w + 4
            assert y - 4 <= b["top"] and b["top"] + b["height"] <= y + h + 4
        assert (await d.client.get(f"{base}/ocr", headers=curator_headers(C))).json() == boxes

        shown = await d.client.get(f"{base}/render", headers=curator_headers(C))
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
        assert shown.headers["cache-control"] == "private, no-store"
        assert Image.open(io.BytesIO(shown.content)).size == (256, 256)
        for who in (submitter_headers(C), curator_headers("Other")):
            assert (await d.client.get(f"{base}/render", headers=who)).status_code == 403

        # blank a box outside the image: refused, nothing released
        r = await d.client.post(f"{base}/blank", headers=curator_headers(C),
                                json={"rectangles": [{"left": 250, "top": 0, "width": 20,
                                                      "height": 5}]})  # fmt: skip
        assert r.status_code == 409 and "not inside the 256x256 image" in r.json()["detail"]

        margin = 3
        rect = {"left": x - margin, "top": y - margin, "width": w + 2 * margin,
                "height": h + 2 * margin}  # fmt: skip
        r = await d.client.post(f"{base}/blank", headers=curator_headers(C),
                                json={"rectangles": [rect]})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["outcome"] == "deidentified"

        done = await d.wait_for(InstanceDeidentified, instance_id=iid, fail_on_hold=False)
        out = dicom.read(await curated(d, done)).pixel_array
        original = dicom.read(raw).pixel_array
        inside = np.zeros(out.shape, dtype=bool)
        inside[rect["top"] : rect["top"] + rect["height"],
               rect["left"] : rect["left"] + rect["width"]] = True  # fmt: skip
        assert (out[inside] == 0).all()  # the text is gone
        assert (out[~inside] == original[~inside]).all()  # everything else is as it was
        assert ocr.find_text(out.astype(np.uint8)) == []
        listed = await d.client.get(f"/api/deid/collections/{C}/held", headers=curator_headers(C))
        assert iid not in {h["instance_id"] for h in listed.json()}


async def test_only_a_pixel_hold_is_blanked(tmp_path: Path) -> None:
    async with deid_platform(tmp_path) as d:
        await d.create_collection(C)
        r = await d.client.post(f"/api/deid/collections/{C}/held/nope/blank",
                                headers=curator_headers(C),
                                json={"rectangles": [{"left": 0, "top": 0, "width": 1,
                                                      "height": 1}]})  # fmt: skip
        assert r.status_code == 404 and "list the held instances" in r.json()["detail"]
        r = await d.client.post(f"/api/deid/collections/{C}/held/nope/blank",
                                headers=curator_headers(C), json={"rectangles": []})  # fmt: skip
        assert r.status_code == 422
