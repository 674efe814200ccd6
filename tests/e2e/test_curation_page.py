"""The curators' page in a real browser (Debian's chromium driven by playwright): log in,
open a collection, open a series, see its slices drawn, mark it Visible and publish it.
Screenshots are kept under .artifacts/browser/ for a human to look at."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from imarc.stack import free_port
from imarc.synth import corpus
from tests.conftest import need_tool

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "browser"
COLLECTION = "Page-CT"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Site:
    url: str
    username: str
    password: str
    token: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("page")
    data = tmp / "var"
    port = free_port()
    env = {**os.environ, "IMARC_DEID_WORKERS": "1", "IMARC_DICOM_PORT": "0"}
    log = open(tmp / "up.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imarc",
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--no-demo",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        creds = json.loads((data / "admin-credentials.json").read_text())
        token = httpx.post(
            f"{url}/api/auth/token",
            data={"grant_type": "password", **creds},
        ).json()["access_token"]
        yield Site(url, creds["username"], creds["password"], token)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _submit(site: Site, n: int) -> None:
    h = {"Authorization": f"Bearer {site.token}"}
    r = httpx.post(
        f"{site.url}/api/intake/collections",
        json={"name": COLLECTION, "licence": "CC-BY-4.0", "access": "public"},
        headers=h,
    )
    assert r.status_code in (201, 409), r.text
    files = [("file", (name, data, "application/dicom")) for name, data in corpus(n)]
    r = httpx.post(
        f"{site.url}/api/intake/collections/{COLLECTION}/instances",
        files=files,
        headers=h,
        timeout=120,
    )
    assert r.status_code == 200 and r.json()["accepted_count"] == n, r.text
    for _ in range(240):
        status = httpx.get(f"{site.url}/api/qc/collections/{COLLECTION}/status", headers=h).json()
        if status.get("deidentified") == n:
            return
        time.sleep(0.25)
    raise AssertionError(f"the {n} instances were not de-identified in time: {status}")


def logged_in(browser: Any, site: Site) -> Any:
    """A page of the curation site, logged in as the admin through its form."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{site.url}/curate/")
    page.fill("input[name=username]", site.username)
    page.fill("input[name=password]", site.password)
    page.click("button[type=submit]")
    return page


def _non_blank(png: bytes) -> float:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    return float(pixels.std())


def test_a_curator_reviews_a_series_slice_by_slice_and_publishes_it(site: Site) -> None:
    need_tool("chromium", "chromium")
    from playwright.sync_api import expect, sync_playwright

    _submit(site, 4)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = logged_in(browser, site)
            link = page.get_by_role("link", name=COLLECTION)
            expect(link).to_be_visible(timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / "1-collections.png"), full_page=True)

            link.click()
            series_link = page.locator("#series tbody a").first
            expect(series_link).to_be_visible(timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / "2-collection.png"), full_page=True)

            series_link.click()
            page.wait_for_function(
                "() => { const i = document.getElementById('slice');"
                " return i && i.complete && i.naturalWidth > 0; }",
                timeout=15_000,
            )
            expect(page.locator("#pos")).to_contain_text("slice 1 / 4")
            expect(page.locator("#header")).to_contain_text("Modality")
            drawn = page.locator("#viewer").screenshot(path=str(ARTIFACTS / "3-slice-1.png"))
            assert _non_blank(drawn) > 5, "the slice should be drawn, not a blank box"
            # the slider moves through the slices
            page.locator("#slider").fill("3")
            expect(page.locator("#pos")).to_contain_text("slice 4 / 4")
            page.screenshot(path=str(ARTIFACTS / "4-series.png"), full_page=True)

            page.fill("#comment", "looks fine")
            page.click("button[data-state=Visible]")
            expect(page.locator("#state")).to_have_text("Visible")

            page.get_by_role("link", name=COLLECTION).click()
            expect(page.locator("#series tbody")).to_contain_text("Visible")
            page.click("#publish")
            expect(page.locator("#toast")).to_contain_text("published 1 series", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "5-published.png"), full_page=True)
        finally:
            browser.close()
    series = httpx.get(
        f"{site.url}/nbia-api/services/v4/getSeries", params={"Collection": COLLECTION}
    ).json()
    assert len(series) == 1 and series[0]["ImageCount"] == 4


def test_a_curator_blanks_burned_in_text_of_a_held_image_and_releases_it(site: Site) -> None:
    need_tool("chromium", "chromium")
    need_tool("tesseract", "tesseract-ocr")
    from playwright.sync_api import expect, sync_playwright

    from tests.deid.test_pixel_review import screen_capture_with_text

    h = {"Authorization": f"Bearer {site.token}"}
    name = "Page-SC"
    r = httpx.post(f"{site.url}/api/intake/collections", headers=h,
                   json={"name": name, "licence": "CC-BY-4.0", "access": "public"})  # fmt: skip
    assert r.status_code == 201, r.text
    raw, _ = screen_capture_with_text()
    r = httpx.post(f"{site.url}/api/intake/collections/{name}/instances", headers=h,
                   files=[("file", ("capture.dcm", raw, "application/dicom"))])  # fmt: skip
    assert r.status_code == 200, r.text
    held_url = f"{site.url}/api/deid/collections/{name}/held"
    for _ in range(240):
        if httpx.get(held_url, headers=h).json():
            break
        time.sleep(0.25)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = logged_in(browser, site)
            page.get_by_role("link", name=name).click()
            page.get_by_role("link", name="Review pixels").click()
            expect(page.locator("#ocr-state")).to_contain_text("text region(s) found",
                                                               timeout=30_000)  # fmt: skip
            assert page.locator(".box").count() >= 1
            page.screenshot(path=str(ARTIFACTS / "6-held-with-text-boxes.png"), full_page=True)
            page.click("#blank")
            expect(page.locator("#toast")).to_contain_text("de-identified now", timeout=30_000)
            expect(page.locator("#held")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "7-released.png"), full_page=True)
        finally:
            browser.close()
    assert httpx.get(held_url, headers=h).json() == []


def test_the_page_refuses_a_wrong_password_with_a_sentence(site: Site) -> None:
    need_tool("chromium", "chromium")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{site.url}/curate/")
            page.fill("input[name=username]", site.username)
            page.fill("input[name=password]", "not-the-password")
            page.click("button[type=submit]")
            expect(page.locator("#login-error")).not_to_be_empty(timeout=10_000)
        finally:
            browser.close()
