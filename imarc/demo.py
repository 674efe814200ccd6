"""The demo collection: loaded once, through the real pipeline, on first start."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import httpx
from pydicom import examples

from imarc.synth import SeriesSpec, ct_series
from services.common.settings import Settings

log = logging.getLogger("imarc.demo")
DEMO_COLLECTION = "IMARC-Demo"


def demo_files() -> list[tuple[str, bytes]]:
    """pydicom's bundled CT and MR, plus a generated 24-slice CT series."""
    files = [
        ("CT_small.dcm", Path(examples.get_path("ct")).read_bytes()),
        ("MR_small.dcm", Path(examples.get_path("mr")).read_bytes()),
    ]
    spec = SeriesSpec(
        patient_id="DEMO-SYN-1", patient_name="SYNTHETIC^DEMO", slices=24, rows=256, columns=256
    )
    files += [(f"synthetic-ct/{i + 1:03d}.dcm", b) for i, b in enumerate(ct_series(spec))]
    return files


def wait_until_processed(
    http: httpx.Client, accepted: int, timeout: float, released: bool = False
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = http.get(f"/api/qc/collections/{DEMO_COLLECTION}/status").json()
        done = s.get("deidentified", 0) + (0 if released else s.get("held", 0))
        if done >= accepted:
            return
        time.sleep(0.5)


def load_demo(base: str, username: str, password: str, timeout: float = 120) -> dict[str, int]:
    """Create the demo collection, submit the demo files, wait for de-id, publish."""
    with httpx.Client(base_url=base, timeout=120) as http:
        tok = http.post(
            "/api/auth/token",
            data={"grant_type": "password", "username": username, "password": password},
        )
        tok.raise_for_status()
        http.headers["Authorization"] = f"Bearer {tok.json()['access_token']}"
        resp = http.post(
            "/api/intake/collections",
            json={
                "name": DEMO_COLLECTION,
                "licence": "CC-BY-4.0",
                "access": "public",
                "description": "Demonstration data: pydicom's example CT and MR "
                "and a synthetic CT series.",
            },
        )
        if resp.status_code not in (201, 409):
            resp.raise_for_status()
        files = demo_files()
        sub = http.post(
            f"/api/intake/collections/{DEMO_COLLECTION}/instances",
            params={"site": "demo"},
            files=[("file", (name, data, "application/dicom")) for name, data in files],
        )
        sub.raise_for_status()
        accepted = int(sub.json()["accepted_count"])
        wait_until_processed(http, accepted, timeout)
        # pydicom's MR example is a DERIVED\SECONDARY image, which de-id holds for possible
        # burned-in PHI; the admin loading the demo has reviewed these files and releases them.
        held = http.get(f"/api/deid/collections/{DEMO_COLLECTION}/held").json()
        for h in held:
            if h["reason"].startswith("possible burned-in PHI"):
                http.post(
                    f"/api/deid/collections/{DEMO_COLLECTION}/held/{h['instance_id']}/release"
                ).raise_for_status()
        if held:
            wait_until_processed(http, accepted, timeout, released=True)
        pub = http.post(f"/api/qc/collections/{DEMO_COLLECTION}/publish", json={"series": []})
        pub.raise_for_status()
        return {"accepted": accepted, "published_series": len(pub.json().get("published", []))}


def start_demo_loader(base: str, settings: Settings) -> threading.Thread | None:
    marker = settings.data_dir.resolve() / "demo-loaded"
    if marker.exists():
        return None

    def run() -> None:
        for _ in range(600):  # wait for the server to come up (bounded)
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        try:
            result = load_demo(
                base, settings.admin_username, settings.admin_password.get_secret_value()
            )
        except Exception as e:
            log.error("the demo collection could not be loaded: %s", e)
            return
        marker.write_text(json.dumps(result))
        print(
            f"demo collection {DEMO_COLLECTION} published: {result['accepted']} instances, "
            f"{result['published_series']} series — try "
            f"{base}/nbia-api/services/v4/getSeries?Collection={DEMO_COLLECTION}",
            flush=True,
        )

    t = threading.Thread(target=run, name="demo-loader", daemon=True)
    t.start()
    return t
