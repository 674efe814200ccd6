"""The product as a user meets it: `imarc up` (what `make run` runs) serves the demo
collection within a minute, and the CLI drives a submission to publication."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydicom.data import get_testdata_file

from imarc.stack import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclass
class Running:
    url: str
    data: Path
    env: dict[str, str]

    def imarc(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "imarc", "--url", self.url, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if ok:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("up")
    data = tmp / "var"
    port = free_port()
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "IMARC_DEID_WORKERS": "1",
        "IMARC_DICOM_PORT": "0",  # the DICOM listener on a free port
    }
    env.pop("IMARC_TOKEN", None)
    log = open(tmp / "up.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "imarc", "up", "--port", str(port), "--data-dir", str(data)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )
    try:
        yield Running(f"http://127.0.0.1:{port}", data, env)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        text = (tmp / "up.log").read_text()
        if "Traceback" in text:
            print(text[-5000:])


def test_up_publishes_the_demo_collection(running: Running) -> None:
    # a quiet machine needs well under a minute; the bound only keeps a hang from lasting
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (running.data / "demo-loaded").exists():
        time.sleep(0.5)
    assert (running.data / "demo-loaded").exists(), "the demo collection was not loaded in 240 s"
    creds = running.data / "admin-credentials.json"
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    values = httpx.get(f"{running.url}/nbia-api/services/v4/getCollectionValues").json()
    assert {"Collection": "IMARC-Demo"} in values
    series = httpx.get(
        f"{running.url}/nbia-api/services/v4/getSeries", params={"Collection": "IMARC-Demo"}
    ).json()
    assert sorted(s["Modality"] for s in series) == ["CT", "CT", "MR"]
    assert sum(s["ImageCount"] for s in series) == 26


def test_cli_submit_status_publish(running: Running, tmp_path: Path) -> None:
    out = running.imarc("login", "--data-dir", str(running.data))
    assert "logged in" in out.stdout
    running.imarc(
        "collections",
        "create",
        "CLI-Test",
        "--licence",
        "CC-BY-4.0",
        "--description",
        "from the CLI test",
    )
    listing = running.imarc("collections", "list")
    assert "CLI-Test" in listing.stdout

    folder = tmp_path / "upload" / "study"
    folder.mkdir(parents=True)
    (folder / "ct.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    (folder / "readme.txt").write_text("not an image\n")
    sub = running.imarc(
        "submit", str(tmp_path / "upload"), "--collection", "CLI-Test", "--site", "site-9", ok=False
    )
    assert sub.returncode == 1, "a held file makes the exit code non-zero"
    assert "sent 2, received 2 ✔" in sub.stdout and "held at intake: 1 not_part10" in sub.stdout
    assert "readme.txt" in sub.stdout and "DICOM" in sub.stdout

    deadline = time.monotonic() + 60
    status: dict[str, int] = {}
    while time.monotonic() < deadline:
        status = json.loads(running.imarc("status", "--collection", "CLI-Test", "--json").stdout)
        if status.get("deidentified") == 1:
            break
        time.sleep(0.5)
    assert status["received"] == 1 and status["held"] == 1 and status["awaiting_review"] == 1
    table = running.imarc("status", "--collection", "CLI-Test")
    assert "awaiting review" in table.stdout

    scan = running.imarc("qc", "scan", "--collection", "CLI-Test", "--run")
    assert "scanned 1 instances of CLI-Test again" in scan.stdout
    assert "no residual-PHI findings in CLI-Test" in scan.stdout
    pub = running.imarc("qc", "publish", "--collection", "CLI-Test")
    assert "published 1 series" in pub.stdout
    status = json.loads(running.imarc("status", "--collection", "CLI-Test", "--json").stdout)
    assert status["published"] == 1

    # the tag inventory of both zones, as CSV and JSON
    csv_text = running.imarc(
        "qc", "inventory", "--collection", "CLI-Test", "--format", "csv"
    ).stdout
    assert csv_text.startswith("device,section,path,element,vr,creator,value,count")
    assert "00080060,Modality,CS,,CT,1" in csv_text
    public = json.loads(
        running.imarc(
            "qc", "inventory", "--collection", "CLI-Test", "--zone", "public", "--format", "json"
        ).stdout
    )
    assert {"element": "Modality", "value": "CT", "count": 1}.items() <= next(
        r for r in public if r["element"] == "Modality"
    ).items()

    # a manager marks the collection face reconstructable: it becomes limited access
    upd = running.imarc("collections", "update", "CLI-Test", "--face-reconstructable")
    assert "updated collection CLI-Test: limited (face reconstructable)" in upd.stdout
    refused = running.imarc("collections", "update", "CLI-Test", "--access", "public", ok=False)
    assert refused.returncode != 0 and "face" in refused.stdout + refused.stderr


def test_cli_errors_are_one_clear_sentence(running: Running) -> None:
    running.imarc("login", "--data-dir", str(running.data))
    missing = running.imarc("status", "--collection", "No-Such-Collection", ok=False)
    assert missing.returncode != 0
    assert "Traceback" not in missing.stderr + missing.stdout
    assert "No-Such-Collection" in missing.stderr

    bad_licence = running.imarc(
        "collections", "create", "Bad-Licence", "--licence", "BOGUS", ok=False
    )
    assert bad_licence.returncode != 0 and "CC-BY-4.0" in bad_licence.stderr

    down = subprocess.run(
        [
            sys.executable,
            "-m",
            "imarc",
            "--url",
            f"http://127.0.0.1:{free_port()}",
            "status",
            "--collection",
            "X",
        ],
        env=running.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode != 0
    assert "cannot reach imarc" in down.stderr and "Traceback" not in down.stderr

    anon = dict(running.env, XDG_CONFIG_HOME=str(running.data / "nobody"))
    refused = subprocess.run(
        [sys.executable, "-m", "imarc", "--url", running.url, "status", "--collection", "CLI-Test"],
        env=anon,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "imarc login" in refused.stderr
